//! The built-in demo model: the same content as `tests/data/demo.cid` (IED `DEMO`, LD `LD0`),
//! so a server runs with no configuration file. A test checks it against the SCL loader.

use super::{Fc, Model, ModelError, ReportControl};
use crate::name::ObjectName;
use crate::value::parse_value;

/// (LN, FC, path below the LN, SCL basic type, initial value or "").
const DEMO_ATTRIBUTES: &[(&str, Fc, &str, &str, &str)] = &[
    ("LLN0", Fc::ST, "Mod.stVal", "Enum", "1"),
    ("LLN0", Fc::ST, "Mod.q", "Quality", ""),
    ("LLN0", Fc::ST, "Mod.t", "Timestamp", ""),
    ("LLN0", Fc::CF, "Mod.ctlModel", "Enum", "0"),
    ("LLN0", Fc::ST, "Beh.stVal", "Enum", ""),
    ("LLN0", Fc::ST, "Beh.q", "Quality", ""),
    ("LLN0", Fc::ST, "Beh.t", "Timestamp", ""),
    ("LLN0", Fc::DC, "NamPlt.vendor", "VisString255", "secmms"),
    ("LLN0", Fc::DC, "NamPlt.swRev", "VisString255", ""),
    ("GGIO1", Fc::ST, "Beh.stVal", "Enum", ""),
    ("GGIO1", Fc::ST, "Beh.q", "Quality", ""),
    ("GGIO1", Fc::ST, "Beh.t", "Timestamp", ""),
    ("GGIO1", Fc::ST, "Ind1.stVal", "BOOLEAN", ""),
    ("GGIO1", Fc::ST, "Ind1.q", "Quality", ""),
    ("GGIO1", Fc::ST, "Ind1.t", "Timestamp", ""),
    ("GGIO1", Fc::MX, "AnIn1.mag.f", "FLOAT32", ""),
    ("GGIO1", Fc::MX, "AnIn1.q", "Quality", ""),
    ("GGIO1", Fc::MX, "AnIn1.t", "Timestamp", ""),
    ("GGIO1", Fc::ST, "SPCSO1.stVal", "BOOLEAN", ""),
    ("GGIO1", Fc::ST, "SPCSO1.q", "Quality", ""),
    ("GGIO1", Fc::ST, "SPCSO1.t", "Timestamp", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.ctlVal", "BOOLEAN", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.origin.orCat", "Enum", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.origin.orIdent", "Octet64", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.ctlNum", "INT8U", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.T", "Timestamp", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.Test", "BOOLEAN", ""),
    ("GGIO1", Fc::CO, "SPCSO1.Oper.Check", "Check", ""),
    ("GGIO1", Fc::CF, "SPCSO1.ctlModel", "Enum", "1"),
];

impl Model {
    /// The built-in demo model, equivalent to `demo.cid`: IED `DEMO`, domain `DEMOLD0` with
    /// `LLN0` (Mod, Beh, NamPlt, data set `DS1`, URCBs `urcb01`/`urcb02`) and `GGIO1` (Beh,
    /// Ind1, AnIn1, SPCSO1).
    pub fn default_demo() -> Model {
        // The table is fixed and covered by tests; an error cannot happen at run time, but a
        // library never panics, so fall back to an empty model.
        Self::try_default_demo().unwrap_or_else(|_| Model::new("DEMO"))
    }

    fn try_default_demo() -> Result<Model, ModelError> {
        let mut m = Model::new("DEMO");
        let d = m.logical_device("LD0");
        for (ln, fc, path, b_type, value) in DEMO_ATTRIBUTES {
            let ty = super::scl::basic_type(b_type)
                .ok_or_else(|| ModelError::Unknown((*b_type).to_owned()))?;
            let v = if value.is_empty() {
                ty.default_value()
            } else {
                parse_value(&ty, value).ok()
            }
            .ok_or_else(|| ModelError::Unknown((*path).to_owned()))?;
            let parts: Vec<&str> = path.split('.').collect();
            d.add_attribute(ln, *fc, &parts, ty, v)?;
        }
        m.add_data_set(
            "DEMOLD0",
            "LLN0$DS1",
            vec![
                ObjectName::domain("DEMOLD0", "GGIO1$ST$Ind1"),
                ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1"),
            ],
        )?;
        m.add_report_control(
            "DEMOLD0",
            "LLN0",
            &ReportControl {
                name: "urcb".into(),
                data_set: Some("DS1".into()),
                rpt_id: "DEMO/urcb".into(),
                conf_rev: 1,
                buffered: false,
                buf_time: 50,
                intg_pd: 0,
                trg_ops: [true, true, false, false, true],
                opt_fields: [true, true, true, true, false, false, false, false, false],
                max_instances: 2,
            },
        )?;
        Ok(m)
    }
}
