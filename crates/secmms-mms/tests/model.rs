//! Model loaders: demo.cid, the TOML form and the built-in demo model agree.

use secmms_mms::model::{Fc, Model};
use secmms_mms::{Data, ObjectName, TypeDescription};

const CID: &str = include_str!("data/demo.cid");
const TOML: &str = include_str!("data/demo.toml");

#[test]
fn demo_cid_loads() {
    let m = Model::from_scl(CID).unwrap();
    assert_eq!(m.ied_name, "DEMO");
    assert_eq!(m.domains.keys().collect::<Vec<_>>(), vec!["DEMOLD0"]);
    let d = m.domain("DEMOLD0").unwrap();
    assert_eq!(
        m.read("DEMOLD0", "LLN0$DC$NamPlt$vendor"),
        Some(Data::VisibleString("secmms".into()))
    );
    assert_eq!(
        m.read("DEMOLD0", "LLN0$ST$Mod$stVal"),
        Some(Data::Integer(1))
    );
    // Enum values by name through EnumType.
    assert_eq!(
        m.read("DEMOLD0", "LLN0$CF$Mod$ctlModel"),
        Some(Data::Integer(0))
    );
    assert_eq!(
        m.read("DEMOLD0", "GGIO1$CF$SPCSO1$ctlModel"),
        Some(Data::Integer(1))
    );
    assert_eq!(
        m.read("DEMOLD0", "GGIO1$MX$AnIn1$mag$f"),
        Some(Data::float32(0.0))
    );
    assert_eq!(
        m.resolve("DEMOLD0", "GGIO1$MX$AnIn1$mag")
            .unwrap()
            .type_description(),
        TypeDescription::Structure {
            packed: false,
            components: vec![secmms_mms::StructComponent {
                name: Some("f".into()),
                ty: TypeDescription::FLOAT32
            }]
        }
    );
    // LN-level structure is ordered by FC, then DO in type order.
    let ggio = m.resolve("DEMOLD0", "GGIO1").unwrap();
    let secmms_mms::model::NodeKind::Struct(fcs) = &ggio.kind else {
        panic!()
    };
    let fc_names: Vec<&str> = fcs.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(fc_names, vec!["MX", "ST", "CO", "CF"]);
    let st = ggio.child("ST").unwrap();
    let secmms_mms::model::NodeKind::Struct(dos) = &st.kind else {
        panic!()
    };
    let do_names: Vec<&str> = dos.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(do_names, vec!["Beh", "Ind1", "SPCSO1"]);
    // Data set and report control blocks.
    let ds = &d.lists["LLN0$DS1"];
    assert_eq!(
        ds.members,
        vec![
            ObjectName::domain("DEMOLD0", "GGIO1$ST$Ind1"),
            ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1")
        ]
    );
    assert!(!ds.deletable);
    assert_eq!(
        m.read("DEMOLD0", "LLN0$RP$urcb01$DatSet"),
        Some(Data::VisibleString("DEMOLD0/LLN0$DS1".into()))
    );
    assert_eq!(
        m.read("DEMOLD0", "LLN0$RP$urcb02$RptID"),
        Some(Data::VisibleString("DEMO/urcb".into()))
    );
    assert_eq!(
        m.read("DEMOLD0", "LLN0$RP$urcb01$BufTm"),
        Some(Data::Unsigned(50))
    );
    let names = d.variable_names();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(names.contains(&"GGIO1$CO$SPCSO1$Oper$origin$orCat".to_owned()));
    assert_eq!(names[0], "GGIO1");
    let _ = Fc::ALL;
}

#[test]
fn default_demo_equals_cid() {
    assert_eq!(Model::default_demo(), Model::from_scl(CID).unwrap());
}

#[test]
fn toml_form_equals_cid() {
    assert_eq!(
        Model::from_toml(TOML).unwrap(),
        Model::from_scl(CID).unwrap()
    );
}

#[test]
fn toml_errors_are_typed() {
    assert!(Model::from_toml("ied = 3").is_err());
    let bad_type = "ied = \"X\"\n[[ld]]\ninst = \"L\"\n[[ld.attr]]\nref = \"LN.D.a\"\nfc = \"ST\"\ntype = \"NOPE\"\n";
    assert!(Model::from_toml(bad_type).is_err());
    let bad_value = "ied = \"X\"\n[[ld]]\ninst = \"L\"\n[[ld.attr]]\nref = \"LN.D.a\"\nfc = \"ST\"\ntype = \"INT8U\"\nvalue = 300\n";
    assert!(Model::from_toml(bad_value).is_err());
    let bad_fc = "ied = \"X\"\n[[ld]]\ninst = \"L\"\n[[ld.attr]]\nref = \"LN.D.a\"\nfc = \"QQ\"\ntype = \"INT8U\"\n";
    assert!(Model::from_toml(bad_fc).is_err());
}

#[test]
fn toml_report_options() {
    let t = r#"
ied = "X"
[[ld]]
inst = "L"
[[ld.attr]]
ref = "LLN0.Mod.stVal"
fc = "ST"
type = "Enum"
value = 1
[[ld.report]]
ln = "LLN0"
name = "brcb"
buffered = true
trg_ops = ["period"]
opt_fields = ["entryID"]
"#;
    let m = Model::from_toml(t).unwrap();
    let trg = m.read("XL", "LLN0$BR$brcb$TrgOps").unwrap();
    assert_eq!(trg.to_string(), "000010");
    let opt = m.read("XL", "LLN0$BR$brcb$OptFlds").unwrap();
    assert_eq!(opt.to_string(), "0000000100");
    assert!(m.resolve("XL", "LLN0$BR$brcb$EntryID").is_some());
    assert!(Model::from_toml(&t.replace("period", "nope")).is_err());
}
