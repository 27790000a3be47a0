//! The TOML model form: a compact way to describe a server model without SCL.
//!
//! ```toml
//! ied = "DEMO"                      # IED name; domains are IED name + LD inst
//!
//! [[ld]]
//! inst = "LD0"                      # domain DEMOLD0
//!
//! [[ld.attr]]                       # one data attribute (a leaf)
//! ref = "GGIO1.AnIn1.mag.f"         # LN.DO[.SDO…].DA[.BDA…]
//! fc = "MX"                         # functional constraint
//! type = "FLOAT32"                  # an SCL basic type (BOOLEAN, INT32, Enum, Quality, …)
//! value = 42.5                      # optional: TOML bool/integer/float, or text
//!
//! [[ld.attr]]
//! ref = "GGIO1.Ind1.stVal"
//! fc = "ST"
//! type = "BOOLEAN"
//! value = true
//!
//! [[ld.data_set]]                   # a data set (named variable list LLN0$DS1)
//! ln = "LLN0"
//! name = "DS1"
//! members = ["GGIO1.Ind1[ST]", "GGIO1.AnIn1[MX]"]   # [LDinst/]LN.DO[.DA][FC]
//!
//! [[ld.report]]                     # report control block(s) LLN0$RP$urcb01, urcb02
//! ln = "LLN0"
//! name = "urcb"
//! data_set = "DS1"
//! rpt_id = "DEMO/urcb"
//! buffered = false
//! max = 2
//! trg_ops = ["dchg", "qchg", "gi"]              # default: dchg, qchg, gi
//! opt_fields = ["seqNum", "timeStamp", "reasonCode", "dataSet"]   # default: these four
//! ```
//!
//! ```
//! # let text = include_str!("../../tests/data/demo.toml");
//! let m = secmms_mms::model::Model::from_toml(text).unwrap();
//! assert!(m.resolve("DEMOLD0", "GGIO1$MX$AnIn1$mag$f").is_some());
//! ```

use super::{Fc, Model, ModelError, ReportControl};
use crate::name::ObjectName;
use crate::value::parse_value;
use serde::Deserialize;

/// Largest TOML document accepted, in octets.
pub const MAX_TOML_SIZE: usize = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    ied: String,
    #[serde(default)]
    ld: Vec<Ld>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ld {
    inst: String,
    #[serde(default)]
    attr: Vec<Attr>,
    #[serde(default)]
    data_set: Vec<DataSet>,
    #[serde(default)]
    report: Vec<Report>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attr {
    #[serde(rename = "ref")]
    reference: String,
    fc: String,
    #[serde(rename = "type")]
    b_type: String,
    value: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSet {
    ln: String,
    name: String,
    members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    ln: String,
    name: String,
    data_set: Option<String>,
    #[serde(default)]
    rpt_id: String,
    #[serde(default)]
    conf_rev: u32,
    #[serde(default)]
    buffered: bool,
    #[serde(default)]
    buf_time: u32,
    #[serde(default)]
    intg_pd: u32,
    #[serde(default = "one")]
    max: u32,
    trg_ops: Option<Vec<String>>,
    opt_fields: Option<Vec<String>>,
}

/// TrgOps names in bit order (IEC 61850-6 `TrgOps` attributes).
const TRG_OPS: [&str; 5] = ["dchg", "qchg", "dupd", "period", "gi"];
/// OptFields names in bit order (IEC 61850-6 `OptFields` attributes).
const OPT_FIELDS: [&str; 9] = [
    "seqNum",
    "timeStamp",
    "reasonCode",
    "dataSet",
    "dataRef",
    "bufOvfl",
    "entryID",
    "configRef",
    "segmentation",
];

fn flags<const N: usize>(
    names: &Option<Vec<String>>,
    all: &[&str; N],
    default: [bool; N],
) -> Result<[bool; N], ModelError> {
    let Some(names) = names else {
        return Ok(default);
    };
    let mut out = [false; N];
    for n in names {
        let i = all
            .iter()
            .position(|a| a == n)
            .ok_or_else(|| ModelError::Unknown(format!("report option {n}")))?;
        out[i] = true;
    }
    Ok(out)
}

fn one() -> u32 {
    1
}

/// Parses `LN.DO.DA[FC]` (optionally prefixed `LDinst/`) into (ld inst, MMS item).
fn member_ref(default_ld: &str, s: &str) -> Result<(String, String), ModelError> {
    let (ld, rest) = match s.split_once('/') {
        Some((l, r)) => (l.to_owned(), r),
        None => (default_ld.to_owned(), s),
    };
    let (path, fc) = rest
        .strip_suffix(']')
        .and_then(|r| r.rsplit_once('['))
        .ok_or_else(|| ModelError::InvalidName(s.to_owned()))?;
    let fc: Fc = fc.parse()?;
    let mut parts = path.split('.');
    let ln = parts.next().unwrap_or("");
    let mut item = format!("{ln}${fc}");
    for p in parts {
        item.push('$');
        item.push_str(p);
    }
    Ok((ld, item))
}

impl Model {
    /// Loads a model from the TOML form (see [`crate::model::toml_form`]).
    pub fn from_toml(text: &str) -> Result<Model, ModelError> {
        if text.len() > MAX_TOML_SIZE {
            return Err(ModelError::TooLarge("TOML document size"));
        }
        let doc: Doc = toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string()))?;
        let mut model = Model::new(doc.ied.clone());
        let mut count = 0usize;
        let mut elements = 0usize;
        for ld in &doc.ld {
            let dom = model.logical_device(&ld.inst);
            for a in &ld.attr {
                count += 1;
                if count > super::MAX_MODEL_ATTRIBUTES {
                    return Err(ModelError::TooLarge("attributes"));
                }
                let fc: Fc = a.fc.parse()?;
                let ty = super::scl::basic_type(&a.b_type)
                    .ok_or_else(|| ModelError::Unknown(format!("basic type {}", a.b_type)))?;
                let mut parts = a.reference.split('.');
                let ln = parts.next().unwrap_or("");
                let path: Vec<&str> = parts.collect();
                let value = match &a.value {
                    None => ty
                        .default_value()
                        .ok_or(ModelError::TooLarge("array size"))?,
                    Some(v) => {
                        let text = match v {
                            toml::Value::String(s) => s.clone(),
                            toml::Value::Integer(i) => i.to_string(),
                            toml::Value::Float(f) => f.to_string(),
                            toml::Value::Boolean(b) => b.to_string(),
                            other => other.to_string(),
                        };
                        parse_value(&ty, &text).map_err(|_| ModelError::InvalidValue {
                            path: a.reference.clone(),
                            value: text.clone(),
                        })?
                    }
                };
                elements += value.element_count();
                if elements > super::MAX_MODEL_ELEMENTS {
                    return Err(ModelError::TooLarge("model elements"));
                }
                dom.add_attribute(ln, fc, &path, ty, value)?;
            }
        }
        for ld in &doc.ld {
            let domain = format!("{}{}", doc.ied, ld.inst);
            for ds in &ld.data_set {
                let members = ds
                    .members
                    .iter()
                    .map(|m| {
                        member_ref(&ld.inst, m)
                            .map(|(l, item)| ObjectName::domain(format!("{}{l}", doc.ied), item))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                model.add_data_set(&domain, &format!("{}${}", ds.ln, ds.name), members)?;
            }
            for r in &ld.report {
                let rc = ReportControl {
                    name: r.name.clone(),
                    data_set: r.data_set.clone(),
                    rpt_id: r.rpt_id.clone(),
                    conf_rev: r.conf_rev,
                    buffered: r.buffered,
                    buf_time: r.buf_time,
                    intg_pd: r.intg_pd,
                    trg_ops: flags(&r.trg_ops, &TRG_OPS, [true, true, false, false, true])?,
                    opt_fields: flags(
                        &r.opt_fields,
                        &OPT_FIELDS,
                        [true, true, true, true, false, false, false, false, false],
                    )?,
                    max_instances: r.max.clamp(1, 99),
                };
                model.add_report_control(&domain, &r.ln, &rc)?;
            }
        }
        Ok(model)
    }
}
