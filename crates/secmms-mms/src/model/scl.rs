//! SCL (IEC 61850-6) loader: builds a [`Model`] from an ICD/CID/IID document.
//!
//! Supported: one IED (the first, or the one named), its `AccessPoint/Server/LDevice`s, `LN0`
//! and `LN` with `lnType`, `DataTypeTemplates` (`LNodeType`/`DO`, `DOType`/`DA`/`SDO`,
//! `DAType`/`BDA`, `EnumType`/`EnumVal`), `count` arrays, initial values from `Val` in `DA`,
//! `BDA`, `DOI`/`SDI`/`DAI`, `DataSet`/`FCDA` and `ReportControl`. Not supported: setting
//! groups, GSE/SMV control blocks, logs.
//!
//! The document is parsed into a small element tree first (no recursion while parsing, with
//! size, depth and element-count limits), then interpreted with bounded recursion.

use super::{Fc, Model, ModelError, ReportControl};
use crate::data::{Data, StructComponent, TypeDescription};
use crate::name::ObjectName;
use crate::value::parse_value;
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;

/// Limits applied to SCL input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SclLimits {
    /// Largest document in octets.
    pub max_size: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements.
    pub max_elements: usize,
    /// Deepest type nesting (SDO/BDA chains through DOType/DAType references).
    pub max_type_depth: usize,
}

impl Default for SclLimits {
    /// DECISION: 32 MiB, depth 64, 2 million elements, type depth 16 — far above real CIDs.
    fn default() -> Self {
        SclLimits {
            max_size: 32 << 20,
            max_depth: 64,
            max_elements: 2_000_000,
            max_type_depth: 16,
        }
    }
}

/// One XML element of the parsed document.
#[derive(Debug, Default)]
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Elem>,
    text: String,
}

impl Elem {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }
    fn val(&self) -> Option<&str> {
        self.child("Val").map(|v| v.text.trim())
    }
}

fn scl_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Scl(e.to_string())
}

fn start_elem(e: &BytesStart<'_>) -> Result<Elem, ModelError> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(scl_err)?;
        let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let v = a.unescape_value().map_err(scl_err)?.into_owned();
        attrs.push((k, v));
    }
    Ok(Elem {
        name,
        attrs,
        ..Elem::default()
    })
}

fn parse_tree(xml: &str, lim: &SclLimits) -> Result<Elem, ModelError> {
    if xml.len() > lim.max_size {
        return Err(ModelError::TooLarge("SCL document size"));
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Elem> = vec![Elem::default()];
    let mut count = 0usize;
    loop {
        let ev = reader.read_event().map_err(scl_err)?;
        match ev {
            Event::Start(e) => {
                count += 1;
                if count > lim.max_elements {
                    return Err(ModelError::TooLarge("SCL element count"));
                }
                if stack.len() > lim.max_depth {
                    return Err(ModelError::TooLarge("SCL nesting depth"));
                }
                stack.push(start_elem(&e)?);
            }
            Event::Empty(e) => {
                count += 1;
                if count > lim.max_elements {
                    return Err(ModelError::TooLarge("SCL element count"));
                }
                let el = start_elem(&e)?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err(ModelError::Scl("unbalanced end tag".into()));
                }
                if let Some(el) = stack.pop() {
                    if let Some(top) = stack.last_mut() {
                        top.children.push(el);
                    }
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.unescape().map_err(scl_err)?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(ModelError::Scl("unclosed element".into()));
    }
    let mut root = stack.pop().unwrap_or_default();
    root.children
        .pop()
        .filter(|r| r.name == "SCL")
        .ok_or_else(|| ModelError::Scl("no SCL root element".into()))
}

/// The MMS type of an SCL basic type (IEC 61850-8-1 §8.1.3.2 and the basic-type table);
/// `None` for `Struct` and unknown names.
pub fn basic_type(b_type: &str) -> Option<TypeDescription> {
    use TypeDescription as T;
    Some(match b_type {
        "BOOLEAN" => T::Boolean,
        "INT8" => T::Integer(8),
        "INT16" => T::Integer(16),
        "INT24" => T::Integer(24),
        "INT32" => T::Integer(32),
        "INT64" => T::Integer(64),
        "INT8U" => T::Unsigned(8),
        "INT16U" => T::Unsigned(16),
        "INT24U" => T::Unsigned(24),
        "INT32U" => T::Unsigned(32),
        "FLOAT32" => T::FLOAT32,
        "FLOAT64" => T::FLOAT64,
        "Enum" => T::Integer(8),
        "Dbpos" | "Tcmd" | "Check" => T::BitString(2),
        "Quality" => T::BitString(13),
        "Timestamp" => T::UtcTime,
        "EntryTime" => T::BinaryTime(true),
        "VisString32" => T::VisibleString(-32),
        "VisString64" => T::VisibleString(-64),
        "VisString65" => T::VisibleString(-65),
        "VisString129" | "ObjRef" => T::VisibleString(-129),
        "VisString255" => T::VisibleString(-255),
        "Currency" => T::VisibleString(-3),
        "Octet64" => T::OctetString(-64),
        "Unicode255" => T::MmsString(-255),
        "TrgOps" => T::BitString(6),
        "OptFlds" => T::BitString(10),
        "SvOptFlds" => T::BitString(5),
        "EntryID" => T::OctetString(8),
        _ => return None,
    })
}

struct Templates<'a> {
    lnode: HashMap<&'a str, &'a Elem>,
    dotype: HashMap<&'a str, &'a Elem>,
    datype: HashMap<&'a str, &'a Elem>,
    enums: HashMap<&'a str, HashMap<&'a str, i64>>,
    lim: SclLimits,
}

/// One attribute produced by expanding a type: path below the DO, FC, type, value, enum type.
struct Leaf<'a> {
    fc: Fc,
    path: Vec<String>,
    ty: TypeDescription,
    value: Data,
    enum_type: Option<&'a str>,
}

impl<'a> Templates<'a> {
    fn new(dtt: Option<&'a Elem>, lim: SclLimits) -> Self {
        let mut t = Templates {
            lnode: HashMap::new(),
            dotype: HashMap::new(),
            datype: HashMap::new(),
            enums: HashMap::new(),
            lim,
        };
        if let Some(dtt) = dtt {
            for c in &dtt.children {
                let Some(id) = c.attr("id") else { continue };
                match c.name.as_str() {
                    "LNodeType" => {
                        t.lnode.insert(id, c);
                    }
                    "DOType" => {
                        t.dotype.insert(id, c);
                    }
                    "DAType" => {
                        t.datype.insert(id, c);
                    }
                    "EnumType" => {
                        let m = c
                            .children("EnumVal")
                            .filter_map(|v| {
                                Some((v.text.trim(), v.attr("ord")?.trim().parse().ok()?))
                            })
                            .collect();
                        t.enums.insert(id, m);
                    }
                    _ => {}
                }
            }
        }
        t
    }

    fn value_of(
        &self,
        ty: &TypeDescription,
        enum_type: Option<&str>,
        text: &str,
        path: &str,
    ) -> Result<Data, ModelError> {
        if let Some(e) = enum_type.and_then(|e| self.enums.get(e)) {
            if let Some(ord) = e.get(text.trim()) {
                return Ok(Data::Integer(*ord));
            }
        }
        parse_value(ty, text).map_err(|_| ModelError::InvalidValue {
            path: path.to_owned(),
            value: text.to_owned(),
        })
    }

    /// The MMS type of a DA/BDA (`Struct` resolved through its DAType, `count` as an array).
    fn da_type(&self, da: &Elem, depth: usize) -> Result<TypeDescription, ModelError> {
        if depth > self.lim.max_type_depth {
            return Err(ModelError::TooLarge("SCL type nesting"));
        }
        let b = da.attr("bType").unwrap_or("");
        let base = if b == "Struct" {
            let id = da.attr("type").unwrap_or("");
            let dt = self
                .datype
                .get(id)
                .ok_or_else(|| ModelError::Unknown(format!("DAType {id}")))?;
            let mut components = Vec::new();
            for bda in dt.children("BDA") {
                components.push(StructComponent {
                    name: bda.attr("name").map(str::to_owned),
                    ty: self.da_type(bda, depth + 1)?,
                });
            }
            TypeDescription::Structure {
                packed: false,
                components,
            }
        } else {
            basic_type(b).ok_or_else(|| ModelError::Unknown(format!("basic type {b}")))?
        };
        let count: u32 = da
            .attr("count")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0);
        Ok(if count > 0 {
            TypeDescription::Array {
                packed: false,
                number_of_elements: count,
                element_type: Box::new(base),
            }
        } else {
            base
        })
    }

    /// Expands a DA (or BDA) into leaves under `path`.
    fn expand_da(
        &self,
        da: &'a Elem,
        fc: Fc,
        path: Vec<String>,
        depth: usize,
        out: &mut Vec<Leaf<'a>>,
    ) -> Result<(), ModelError> {
        if depth > self.lim.max_type_depth {
            return Err(ModelError::TooLarge("SCL type nesting"));
        }
        let is_array = da
            .attr("count")
            .and_then(|c| c.trim().parse::<u32>().ok())
            .unwrap_or(0)
            > 0;
        if da.attr("bType") == Some("Struct") && !is_array {
            let id = da.attr("type").unwrap_or("");
            let dt = self
                .datype
                .get(id)
                .ok_or_else(|| ModelError::Unknown(format!("DAType {id}")))?;
            for bda in dt.children("BDA") {
                let name = bda.attr("name").unwrap_or("").to_owned();
                let mut p = path.clone();
                p.push(name);
                self.expand_da(bda, fc, p, depth + 1, out)?;
            }
            return Ok(());
        }
        let ty = self.da_type(da, depth)?;
        let enum_type = (da.attr("bType") == Some("Enum"))
            .then(|| da.attr("type"))
            .flatten();
        let value = match da.val() {
            Some(text) if !is_array => self.value_of(&ty, enum_type, text, &path.join("."))?,
            _ => ty
                .default_value()
                .ok_or(ModelError::TooLarge("array size"))?,
        };
        out.push(Leaf {
            fc,
            path,
            ty,
            value,
            enum_type,
        });
        Ok(())
    }

    /// Expands a DOType into leaves under `path`.
    fn expand_do(
        &self,
        type_id: &str,
        path: Vec<String>,
        depth: usize,
        out: &mut Vec<Leaf<'a>>,
    ) -> Result<(), ModelError> {
        if depth > self.lim.max_type_depth {
            return Err(ModelError::TooLarge("SCL type nesting"));
        }
        let dot = self
            .dotype
            .get(type_id)
            .ok_or_else(|| ModelError::Unknown(format!("DOType {type_id}")))?;
        for c in &dot.children {
            let name = c.attr("name").unwrap_or("").to_owned();
            let mut p = path.clone();
            p.push(name);
            match c.name.as_str() {
                "DA" => {
                    let fc: Fc = c.attr("fc").unwrap_or("").parse()?;
                    self.expand_da(c, fc, p, depth + 1, out)?;
                }
                "SDO" => self.expand_do(c.attr("type").unwrap_or(""), p, depth + 1, out)?,
                _ => {}
            }
        }
        Ok(())
    }
}

fn ln_name(e: &Elem) -> String {
    format!(
        "{}{}{}",
        e.attr("prefix").unwrap_or(""),
        e.attr("lnClass").unwrap_or(""),
        e.attr("inst").unwrap_or("")
    )
}

/// Collects `(path below the DO, value text)` of every DAI under a DOI/SDI.
fn instance_values<'e>(
    e: &'e Elem,
    path: Vec<String>,
    depth: usize,
    lim: &SclLimits,
    out: &mut Vec<(Vec<String>, &'e str)>,
) -> Result<(), ModelError> {
    if depth > lim.max_type_depth {
        return Err(ModelError::TooLarge("SCL instance nesting"));
    }
    for c in &e.children {
        let mut p = path.clone();
        p.push(c.attr("name").unwrap_or("").to_owned());
        match c.name.as_str() {
            "DAI" => {
                if let Some(v) = c.val() {
                    out.push((p, v));
                }
            }
            "SDI" => instance_values(c, p, depth + 1, lim, out)?,
            _ => {}
        }
    }
    Ok(())
}

fn flag(e: Option<&Elem>, name: &str) -> bool {
    e.and_then(|e| e.attr(name)) == Some("true")
}

impl Model {
    /// Loads a model from SCL text with default limits, using the first IED.
    pub fn from_scl(xml: &str) -> Result<Model, ModelError> {
        Self::from_scl_with(xml, None, &SclLimits::default())
    }

    /// Loads a model from SCL text: the IED called `ied` (or the first one), within `lim`.
    pub fn from_scl_with(
        xml: &str,
        ied: Option<&str>,
        lim: &SclLimits,
    ) -> Result<Model, ModelError> {
        let root = parse_tree(xml, lim)?;
        let tpl = Templates::new(root.child("DataTypeTemplates"), *lim);
        let ied_el = root
            .children("IED")
            .find(|e| ied.is_none() || e.attr("name") == ied)
            .ok_or_else(|| ModelError::Unknown("IED".into()))?;
        let ied_name = ied_el.attr("name").unwrap_or("").to_owned();
        let mut model = Model::new(ied_name.clone());
        let mut leaves_total = 0usize;
        let mut elements_total = 0usize;
        // Pass 1: attributes and values.
        let lds: Vec<&Elem> = ied_el
            .children("AccessPoint")
            .filter_map(|ap| ap.child("Server"))
            .flat_map(|s| s.children("LDevice"))
            .collect();
        for ld in &lds {
            let inst = ld.attr("inst").unwrap_or("");
            let dom = model.logical_device(inst);
            for ln in ld
                .children
                .iter()
                .filter(|c| c.name == "LN0" || c.name == "LN")
            {
                let lname = ln_name(ln);
                let lt = ln.attr("lnType").unwrap_or("");
                let lnt = tpl
                    .lnode
                    .get(lt)
                    .ok_or_else(|| ModelError::Unknown(format!("LNodeType {lt}")))?;
                let mut leaves = Vec::new();
                for d in lnt.children("DO") {
                    let dname = d.attr("name").unwrap_or("").to_owned();
                    tpl.expand_do(d.attr("type").unwrap_or(""), vec![dname], 0, &mut leaves)?;
                }
                leaves_total += leaves.len();
                if leaves_total > super::MAX_MODEL_ATTRIBUTES {
                    return Err(ModelError::TooLarge("attributes"));
                }
                elements_total += leaves
                    .iter()
                    .map(|l| l.value.element_count())
                    .sum::<usize>();
                if elements_total > super::MAX_MODEL_ELEMENTS {
                    return Err(ModelError::TooLarge("model elements"));
                }
                let mut enum_of: HashMap<String, Option<&str>> = HashMap::new();
                for l in leaves {
                    let refs: Vec<&str> = l.path.iter().map(String::as_str).collect();
                    enum_of.insert(format!("{}${}", l.fc, l.path.join("$")), l.enum_type);
                    dom.add_attribute(&lname, l.fc, &refs, l.ty, l.value)?;
                }
                // DOI/SDI/DAI initial values.
                for doi in ln.children("DOI") {
                    let mut vals = Vec::new();
                    let dname = doi.attr("name").unwrap_or("").to_owned();
                    instance_values(doi, vec![dname], 0, lim, &mut vals)?;
                    for (path, text) in vals {
                        let below = path.join("$");
                        let found = Fc::ALL.iter().find_map(|fc| {
                            let item = format!("{lname}${fc}${below}");
                            enum_of.get(&format!("{fc}${below}")).map(|e| (item, *e))
                        });
                        let Some((item, enum_type)) = found else {
                            return Err(ModelError::Unknown(format!(
                                "DAI {lname}.{}",
                                path.join(".")
                            )));
                        };
                        let node = dom
                            .resolve_mut(&item)
                            .ok_or_else(|| ModelError::Unknown(item.clone()))?;
                        let ty = node.type_description();
                        let v = tpl.value_of(&ty, enum_type, text, &item)?;
                        node.store(v);
                    }
                }
            }
        }
        // Pass 2: data sets and report control blocks (they refer to attributes anywhere).
        for ld in &lds {
            let inst = ld.attr("inst").unwrap_or("");
            let domain = format!("{ied_name}{inst}");
            for ln in ld
                .children
                .iter()
                .filter(|c| c.name == "LN0" || c.name == "LN")
            {
                let lname = ln_name(ln);
                for ds in ln.children("DataSet") {
                    let mut members = Vec::new();
                    for f in ds.children("FCDA") {
                        let ld_inst = f.attr("ldInst").unwrap_or(inst);
                        let fln = format!(
                            "{}{}{}",
                            f.attr("prefix").unwrap_or(""),
                            f.attr("lnClass").unwrap_or(""),
                            f.attr("lnInst").unwrap_or("")
                        );
                        let fc = f.attr("fc").unwrap_or("");
                        let mut item = format!("{fln}${fc}");
                        if let Some(d) = f.attr("doName").filter(|d| !d.is_empty()) {
                            item.push('$');
                            item.push_str(&d.replace('.', "$"));
                        }
                        if let Some(d) = f.attr("daName").filter(|d| !d.is_empty()) {
                            item.push('$');
                            item.push_str(&d.replace('.', "$"));
                        }
                        members.push(ObjectName::domain(format!("{ied_name}{ld_inst}"), item));
                    }
                    let dsname = ds.attr("name").unwrap_or("");
                    model.add_data_set(&domain, &format!("{lname}${dsname}"), members)?;
                }
                for rc in ln.children("ReportControl") {
                    let trg = rc.child("TrgOps");
                    let opt = rc.child("OptFields");
                    let num = |k: &str| {
                        rc.attr(k)
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0u32)
                    };
                    let r = ReportControl {
                        name: rc.attr("name").unwrap_or("").to_owned(),
                        data_set: rc
                            .attr("datSet")
                            .filter(|d| !d.is_empty())
                            .map(str::to_owned),
                        rpt_id: rc.attr("rptID").unwrap_or("").to_owned(),
                        conf_rev: num("confRev"),
                        buffered: rc.attr("buffered") == Some("true"),
                        buf_time: num("bufTime"),
                        intg_pd: num("intgPd"),
                        trg_ops: [
                            flag(trg, "dchg"),
                            flag(trg, "qchg"),
                            flag(trg, "dupd"),
                            flag(trg, "period"),
                            flag(trg, "gi"),
                        ],
                        opt_fields: [
                            flag(opt, "seqNum"),
                            flag(opt, "timeStamp"),
                            flag(opt, "reasonCode"),
                            flag(opt, "dataSet"),
                            flag(opt, "dataRef"),
                            flag(opt, "bufOvfl"),
                            flag(opt, "entryID"),
                            flag(opt, "configRef"),
                            flag(opt, "segmentation"),
                        ],
                        max_instances: rc
                            .child("RptEnabled")
                            .and_then(|e| e.attr("max"))
                            .and_then(|m| m.trim().parse().ok())
                            .unwrap_or(1)
                            .min(99),
                    };
                    model.add_report_control(&domain, &lname, &r)?;
                }
            }
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_documents_are_errors() {
        assert!(Model::from_scl("<SCL><IED name='X'").is_err());
        assert!(Model::from_scl("<NotScl/>").is_err());
        let deep = "<SCL>".to_owned() + &"<a>".repeat(100) + &"</a>".repeat(100) + "</SCL>";
        assert_eq!(
            Model::from_scl(&deep),
            Err(ModelError::TooLarge("SCL nesting depth"))
        );
        // A DAType that contains itself.
        let cyclic = r#"<SCL><IED name="X"><AccessPoint name="A"><Server><LDevice inst="L">
            <LN0 lnClass="LLN0" inst="" lnType="T"/></LDevice></Server></AccessPoint></IED>
            <DataTypeTemplates><LNodeType id="T" lnClass="LLN0"><DO name="D" type="DT"/></LNodeType>
            <DOType id="DT" cdc="X"><DA name="a" bType="Struct" type="S" fc="ST"/></DOType>
            <DAType id="S"><BDA name="b" bType="Struct" type="S"/></DAType></DataTypeTemplates></SCL>"#;
        assert_eq!(
            Model::from_scl(cyclic),
            Err(ModelError::TooLarge("SCL type nesting"))
        );
        // Nested arrays: 1000 x 1000 elements are refused, not allocated.
        let arrays = r#"<SCL><IED name="X"><AccessPoint name="A"><Server><LDevice inst="L">
            <LN0 lnClass="LLN0" inst="" lnType="T"/></LDevice></Server></AccessPoint></IED>
            <DataTypeTemplates><LNodeType id="T" lnClass="LLN0"><DO name="D" type="DT"/></LNodeType>
            <DOType id="DT" cdc="X"><DA name="a" bType="Struct" type="S" fc="ST" count="1000"/></DOType>
            <DAType id="S"><BDA name="b" bType="INT32" count="1000"/></DAType></DataTypeTemplates></SCL>"#;
        assert_eq!(
            Model::from_scl(arrays),
            Err(ModelError::TooLarge("array size"))
        );
        // A small array works.
        let ok = arrays.replace("1000", "3");
        let m = Model::from_scl(&ok).unwrap();
        assert_eq!(
            m.read("XL", "LLN0$ST$D$a").unwrap().to_string(),
            "[{[0, 0, 0]}, {[0, 0, 0]}, {[0, 0, 0]}]"
        );
    }
}
