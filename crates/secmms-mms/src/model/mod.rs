//! The served data model: an in-memory IEC 61850-style server model mapped to MMS the
//! IEC 61850-8-1 way.
//!
//! * A **logical device** is an MMS domain named IED name + LD inst (`DEMOLD0`).
//! * A **logical node** is a domain-specific named variable (`GGIO1`) whose type is a
//!   structure with one component per functional constraint (`GGIO1$MX`, `GGIO1$ST`, …), each
//!   a structure of the data objects that have attributes with that FC, in data-object order
//!   (IEC 61850-8-1 §8.1.3). Every component path is itself a named variable
//!   (`GGIO1$MX$AnIn1$mag$f`).
//! * A **data set** is a named variable list (`LLN0$DS1`), a **report control block** a plain
//!   structured variable under the `RP`/`BR` FC (`LLN0$RP$urcb01`).
//!
//! Models come from SCL ([`Model::from_scl`]), from the TOML form ([`Model::from_toml`], see
//! [`toml_form`]) or from [`Model::default_demo`].

use crate::data::{Data, StructComponent, TypeDescription};
use crate::name::ObjectName;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod demo;
pub mod scl;
pub mod toml_form;

pub use scl::SclLimits;

/// Most attributes (leaves) a model may hold. DECISION: bounds memory for hostile SCL/TOML input.
pub const MAX_MODEL_ATTRIBUTES: usize = 200_000;
/// Most Data elements (counting array elements) a loaded model may hold.
pub const MAX_MODEL_ELEMENTS: usize = 2_000_000;
/// Most named variable lists per domain (client-defined lists beyond this are refused with
/// resource/memory-unavailable, ISO 9506-2 §7.4.1).
pub const MAX_LISTS_PER_DOMAIN: usize = 256;
/// Most members of a named variable list (IEC 61850 data sets are far smaller).
pub const MAX_LIST_MEMBERS: usize = 1024;

/// Errors while building or loading a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The SCL document is not well-formed XML or exceeds its limits.
    #[error("SCL: {0}")]
    Scl(String),
    /// The TOML document is invalid.
    #[error("TOML: {0}")]
    Toml(String),
    /// A name is not a valid MMS identifier component.
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// Two definitions of the same path disagree (a leaf where a structure is, or twice).
    #[error("conflicting definition of {0}")]
    Conflict(String),
    /// A referenced type, object or domain does not exist.
    #[error("unknown {0}")]
    Unknown(String),
    /// A value does not fit its type.
    #[error("invalid value {value:?} for {path}")]
    InvalidValue {
        /// The attribute.
        path: String,
        /// The offending text.
        value: String,
    },
    /// A size limit was exceeded.
    #[error("model limit exceeded: {0}")]
    TooLarge(&'static str),
}

/// Functional constraint (IEC 61850-7-2 §6.7; IEC 61850-8-1 §8.1.3.2 uses it as the second
/// component of an MMS variable name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Fc {
    BL,
    BR,
    CF,
    CO,
    DC,
    EX,
    GO,
    GS,
    LG,
    MS,
    MX,
    OR,
    RP,
    SE,
    SG,
    SP,
    SR,
    ST,
    SV,
    US,
}

impl Fc {
    /// Every FC (alphabetical).
    pub const ALL: [Fc; 20] = [
        Fc::BL,
        Fc::BR,
        Fc::CF,
        Fc::CO,
        Fc::DC,
        Fc::EX,
        Fc::GO,
        Fc::GS,
        Fc::LG,
        Fc::MS,
        Fc::MX,
        Fc::OR,
        Fc::RP,
        Fc::SE,
        Fc::SG,
        Fc::SP,
        Fc::SR,
        Fc::ST,
        Fc::SV,
        Fc::US,
    ];
    /// The order in which FC components appear in a logical node's MMS structure.
    /// DECISION (IEC 61850-8-1 §8.1.3 leaves it open): the order of libiec61850's
    /// `createNamedVariableFromLogicalNode`, the most widespread server, so a read of a whole
    /// LN looks the same as from that stack; GS (absent there) goes last. GetNameList answers
    /// are sorted independently of this order.
    pub const LN_COMPONENT_ORDER: [Fc; 20] = [
        Fc::MX,
        Fc::ST,
        Fc::CO,
        Fc::CF,
        Fc::DC,
        Fc::SP,
        Fc::SG,
        Fc::RP,
        Fc::LG,
        Fc::BR,
        Fc::GO,
        Fc::SV,
        Fc::SE,
        Fc::MS,
        Fc::US,
        Fc::EX,
        Fc::SR,
        Fc::OR,
        Fc::BL,
        Fc::GS,
    ];

    /// Rank in [`Fc::LN_COMPONENT_ORDER`].
    pub fn component_rank(self) -> usize {
        Fc::LN_COMPONENT_ORDER
            .iter()
            .position(|f| *f == self)
            .unwrap_or(Fc::LN_COMPONENT_ORDER.len())
    }

    /// The two-letter name.
    pub fn as_str(self) -> &'static str {
        use Fc::*;
        match self {
            BL => "BL",
            BR => "BR",
            CF => "CF",
            CO => "CO",
            DC => "DC",
            EX => "EX",
            GO => "GO",
            GS => "GS",
            LG => "LG",
            MS => "MS",
            MX => "MX",
            OR => "OR",
            RP => "RP",
            SE => "SE",
            SG => "SG",
            SP => "SP",
            SR => "SR",
            ST => "ST",
            SV => "SV",
            US => "US",
        }
    }
}

impl FromStr for Fc {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Fc, ModelError> {
        Fc::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| ModelError::Unknown(format!("functional constraint {s:?}")))
    }
}

impl fmt::Display for Fc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of a logical node's variable tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Component name (LN name, FC, DO, DA, BDA).
    pub name: String,
    /// Leaf or structure.
    pub kind: NodeKind,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A value with its type (an array is a leaf too: it is read and written whole).
    Leaf {
        /// The MMS type.
        ty: TypeDescription,
        /// The current value.
        value: Data,
    },
    /// A structure of named components, in order.
    Struct(Vec<Node>),
}

impl Node {
    fn new_struct(name: &str) -> Node {
        Node {
            name: name.to_owned(),
            kind: NodeKind::Struct(Vec::new()),
        }
    }
    /// The child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Struct(c) => c.iter().find(|n| n.name == name),
            NodeKind::Leaf { .. } => None,
        }
    }
    fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        match &mut self.kind {
            NodeKind::Struct(c) => c.iter_mut().find(|n| n.name == name),
            NodeKind::Leaf { .. } => None,
        }
    }
    /// The MMS type of this node (a structure for inner nodes).
    pub fn type_description(&self) -> TypeDescription {
        match &self.kind {
            NodeKind::Leaf { ty, .. } => ty.clone(),
            NodeKind::Struct(c) => TypeDescription::Structure {
                packed: false,
                components: c
                    .iter()
                    .map(|n| StructComponent {
                        name: Some(n.name.clone()),
                        ty: n.type_description(),
                    })
                    .collect(),
            },
        }
    }
    /// The current value of this node.
    pub fn value(&self) -> Data {
        match &self.kind {
            NodeKind::Leaf { value, .. } => value.clone(),
            NodeKind::Struct(c) => Data::Structure(c.iter().map(Node::value).collect()),
        }
    }
    /// True when `d` can be written to this node.
    pub fn accepts(&self, d: &Data) -> bool {
        match (&self.kind, d) {
            (NodeKind::Leaf { ty, .. }, d) => ty.matches(d),
            (NodeKind::Struct(c), Data::Structure(v)) => {
                c.len() == v.len() && c.iter().zip(v).all(|(n, d)| n.accepts(d))
            }
            _ => false,
        }
    }
    /// Stores `d` (which must satisfy [`Node::accepts`]; mismatching parts are left alone).
    pub fn store(&mut self, d: Data) {
        match (&mut self.kind, d) {
            (NodeKind::Leaf { value, .. }, d) => *value = d,
            (NodeKind::Struct(c), Data::Structure(v)) => {
                for (n, d) in c.iter_mut().zip(v) {
                    n.store(d);
                }
            }
            _ => {}
        }
    }
    fn collect_names(&self, prefix: &str, out: &mut Vec<String>) {
        let me = if prefix.is_empty() {
            self.name.clone()
        } else {
            format!("{prefix}${}", self.name)
        };
        if let NodeKind::Struct(c) = &self.kind {
            for n in c {
                n.collect_names(&me, out);
            }
        }
        out.push(me);
    }
    fn leaf_count(&self) -> usize {
        match &self.kind {
            NodeKind::Leaf { .. } => 1,
            NodeKind::Struct(c) => c.iter().map(Node::leaf_count).sum(),
        }
    }
}

/// A named variable list (IEC 61850 data set), ISO 9506-2 §14.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVariableList {
    /// Members, in order.
    pub members: Vec<ObjectName>,
    /// True for lists a client defined (deletable); false for those from the configuration.
    pub deletable: bool,
}

/// A logical device: an MMS domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Domain {
    /// Logical nodes, each the root of its variable tree (children are FC structures).
    pub logical_nodes: Vec<Node>,
    /// Named variable lists by item name (`LLN0$DS1`).
    pub lists: BTreeMap<String, NamedVariableList>,
}

impl Domain {
    /// Resolves an MMS item name (`GGIO1$MX$AnIn1$mag$f`).
    pub fn resolve(&self, item: &str) -> Option<&Node> {
        let mut parts = item.split('$');
        let ln = parts.next()?;
        let mut node = self.logical_nodes.iter().find(|n| n.name == ln)?;
        for p in parts {
            node = node.child(p)?;
        }
        Some(node)
    }

    /// Resolves an item name for update.
    pub fn resolve_mut(&mut self, item: &str) -> Option<&mut Node> {
        let mut parts = item.split('$');
        let ln = parts.next()?;
        let mut node = self.logical_nodes.iter_mut().find(|n| n.name == ln)?;
        for p in parts {
            node = node.child_mut(p)?;
        }
        Some(node)
    }

    /// Every named variable of the domain (logical nodes and all their component paths),
    /// sorted by octet value as IEC 61850 servers list them.
    pub fn variable_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ln in &self.logical_nodes {
            ln.collect_names("", &mut out);
        }
        out.sort();
        out
    }

    /// Adds (or overwrites the value of) one attribute: logical node `ln`, functional
    /// constraint `fc`, then `path` (DO, [SDO…], DA, [BDA…]). Intermediate structures are
    /// created in insertion order; FC structures are kept in [`Fc::LN_COMPONENT_ORDER`].
    pub fn add_attribute(
        &mut self,
        ln: &str,
        fc: Fc,
        path: &[&str],
        ty: TypeDescription,
        value: Data,
    ) -> Result<(), ModelError> {
        check_component(ln)?;
        if path.is_empty() {
            return Err(ModelError::InvalidName(format!("{ln}${fc}")));
        }
        for p in path {
            check_component(p)?;
        }
        if !ty.matches(&value) {
            return Err(ModelError::InvalidValue {
                path: format!("{ln}${fc}${}", path.join("$")),
                value: format!("{value:?}"),
            });
        }
        let lnode = match self.logical_nodes.iter().position(|n| n.name == ln) {
            Some(i) => &mut self.logical_nodes[i],
            None => {
                self.logical_nodes.push(Node::new_struct(ln));
                let last = self.logical_nodes.len() - 1;
                &mut self.logical_nodes[last]
            }
        };
        let NodeKind::Struct(fcs) = &mut lnode.kind else {
            return Err(ModelError::Conflict(ln.to_owned()));
        };
        let fc_name = fc.as_str();
        let idx = match fcs.iter().position(|n| n.name == fc_name) {
            Some(i) => i,
            None => {
                let rank = fc.component_rank();
                let pos = fcs
                    .iter()
                    .position(|n| {
                        n.name
                            .parse::<Fc>()
                            .map(Fc::component_rank)
                            .unwrap_or(usize::MAX)
                            > rank
                    })
                    .unwrap_or(fcs.len());
                fcs.insert(pos, Node::new_struct(fc_name));
                pos
            }
        };
        let mut node = &mut fcs[idx];
        let (last, inner) = path
            .split_last()
            .ok_or(ModelError::Conflict(ln.to_owned()))?;
        for p in inner {
            let NodeKind::Struct(children) = &mut node.kind else {
                return Err(ModelError::Conflict(format!(
                    "{ln}${fc}${}",
                    path.join("$")
                )));
            };
            let i = match children.iter().position(|n| n.name == *p) {
                Some(i) => i,
                None => {
                    children.push(Node::new_struct(p));
                    children.len() - 1
                }
            };
            node = &mut children[i];
        }
        let NodeKind::Struct(children) = &mut node.kind else {
            return Err(ModelError::Conflict(format!(
                "{ln}${fc}${}",
                path.join("$")
            )));
        };
        match children.iter_mut().find(|n| n.name == *last) {
            Some(Node {
                kind: NodeKind::Leaf { ty: t, value: v },
                ..
            }) if *t == ty => *v = value,
            Some(_) => {
                return Err(ModelError::Conflict(format!(
                    "{ln}${fc}${}",
                    path.join("$")
                )))
            }
            None => children.push(Node {
                name: (*last).to_owned(),
                kind: NodeKind::Leaf { ty, value },
            }),
        }
        Ok(())
    }

    fn leaf_count(&self) -> usize {
        self.logical_nodes.iter().map(Node::leaf_count).sum()
    }
}

fn check_component(s: &str) -> Result<(), ModelError> {
    let ok = !s.is_empty()
        && s.len() <= crate::limits::MAX_IDENTIFIER_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidName(s.to_owned()))
    }
}

/// Identity the server reports in Identify (ISO 9506-2 §10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// vendorName.
    pub vendor: String,
    /// modelName.
    pub model: String,
    /// revision.
    pub revision: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            vendor: "secmms".into(),
            model: "secmms-server".into(),
            revision: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// An IEC 61850 server model: the IED name and its logical devices (MMS domains).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// IED name (prefix of every domain name).
    pub ied_name: String,
    /// Domains by name (`DEMOLD0`).
    pub domains: BTreeMap<String, Domain>,
}

impl Model {
    /// An empty model for an IED.
    pub fn new(ied_name: impl Into<String>) -> Self {
        Model {
            ied_name: ied_name.into(),
            domains: BTreeMap::new(),
        }
    }

    /// The domain for logical device `ld_inst` (named IED name + LD inst), created if needed.
    pub fn logical_device(&mut self, ld_inst: &str) -> &mut Domain {
        let name = format!("{}{}", self.ied_name, ld_inst);
        self.domains.entry(name).or_default()
    }

    /// A domain by its MMS name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.get(name)
    }

    /// A domain by its MMS name, for update.
    pub fn domain_mut(&mut self, name: &str) -> Option<&mut Domain> {
        self.domains.get_mut(name)
    }

    /// Resolves a domain-specific variable.
    pub fn resolve(&self, domain: &str, item: &str) -> Option<&Node> {
        self.domain(domain)?.resolve(item)
    }

    /// Reads the value of a variable (`None` when it does not exist).
    pub fn read(&self, domain: &str, item: &str) -> Option<Data> {
        self.resolve(domain, item).map(Node::value)
    }

    /// Total number of leaf attributes.
    pub fn attribute_count(&self) -> usize {
        self.domains.values().map(Domain::leaf_count).sum()
    }

    /// Adds a data set (a non-deletable named variable list) to a domain.
    pub fn add_data_set(
        &mut self,
        domain: &str,
        item: &str,
        members: Vec<ObjectName>,
    ) -> Result<(), ModelError> {
        if members.len() > MAX_LIST_MEMBERS {
            return Err(ModelError::TooLarge("data set members"));
        }
        for m in &members {
            if let ObjectName::DomainSpecific { domain, item } = m {
                if self.resolve(domain, item).is_none() {
                    return Err(ModelError::Unknown(format!("data set member {m}")));
                }
            } else {
                return Err(ModelError::Unknown(format!("data set member {m}")));
            }
        }
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| ModelError::Unknown(format!("domain {domain}")))?;
        d.lists.insert(
            item.to_owned(),
            NamedVariableList {
                members,
                deletable: false,
            },
        );
        Ok(())
    }

    /// Adds report control block instances (IEC 61850-8-1 §17.2: a structured variable under
    /// FC `RP` (unbuffered) or `BR` (buffered) of the logical node).
    pub fn add_report_control(
        &mut self,
        domain: &str,
        ln: &str,
        rcb: &ReportControl,
    ) -> Result<(), ModelError> {
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| ModelError::Unknown(format!("domain {domain}")))?;
        let dataset_ref = match &rcb.data_set {
            Some(ds) => format!("{domain}/{ln}${ds}"),
            None => String::new(),
        };
        let count = rcb.max_instances.max(1);
        for i in 1..=count {
            let name = if count > 1 || FORCE_RCB_INDEX {
                format!("{}{i:02}", rcb.name)
            } else {
                rcb.name.clone()
            };
            for (attr, ty, value) in rcb.attributes(&dataset_ref) {
                let fc = if rcb.buffered { Fc::BR } else { Fc::RP };
                d.add_attribute(ln, fc, &[&name, attr], ty, value)?;
            }
        }
        Ok(())
    }
}

/// DECISION (IEC 61850-8-1 §17.2.2 instance naming): with `RptEnabled max > 1` the instances
/// are `name01`, `name02`, … (as open61850 lists them); a single instance keeps the plain name.
pub const FORCE_RCB_INDEX: bool = false;

/// A report control block definition (IEC 61850-6 `ReportControl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportControl {
    /// Block name.
    pub name: String,
    /// Data set name (in the same LN).
    pub data_set: Option<String>,
    /// RptID.
    pub rpt_id: String,
    /// confRev.
    pub conf_rev: u32,
    /// buffered (BRCB) or not (URCB).
    pub buffered: bool,
    /// bufTime in ms.
    pub buf_time: u32,
    /// intgPd in ms.
    pub intg_pd: u32,
    /// TrgOps bits: dchg, qchg, dupd, period, gi.
    pub trg_ops: [bool; 5],
    /// OptFields bits: seqNum, timeStamp, reasonCode, dataSet, dataRef, bufOvfl, entryID,
    /// configRef, segmentation.
    pub opt_fields: [bool; 9],
    /// RptEnabled max: number of instances.
    pub max_instances: u32,
}

impl ReportControl {
    /// The attributes of the MMS RCB structure, in IEC 61850-8-1 order.
    fn attributes(&self, dataset_ref: &str) -> Vec<(&'static str, TypeDescription, Data)> {
        use crate::data::BitString;
        let mut trg = vec![false];
        trg.extend_from_slice(&self.trg_ops);
        let mut opt = vec![false];
        opt.extend_from_slice(&self.opt_fields);
        let vis = |s: &str| Data::VisibleString(s.to_owned());
        let mut v = vec![
            (
                "RptID",
                TypeDescription::VisibleString(-129),
                vis(&self.rpt_id),
            ),
            ("RptEna", TypeDescription::Boolean, Data::Boolean(false)),
        ];
        if !self.buffered {
            v.push(("Resv", TypeDescription::Boolean, Data::Boolean(false)));
        }
        v.extend([
            (
                "DatSet",
                TypeDescription::VisibleString(-129),
                vis(dataset_ref),
            ),
            (
                "ConfRev",
                TypeDescription::Unsigned(32),
                Data::Unsigned(self.conf_rev as u64),
            ),
            (
                "OptFlds",
                TypeDescription::BitString(10),
                Data::BitString(BitString::from_bits(&opt)),
            ),
            (
                "BufTm",
                TypeDescription::Unsigned(32),
                Data::Unsigned(self.buf_time as u64),
            ),
            (
                "SqNum",
                TypeDescription::Unsigned(if self.buffered { 16 } else { 8 }),
                Data::Unsigned(0),
            ),
            (
                "TrgOps",
                TypeDescription::BitString(6),
                Data::BitString(BitString::from_bits(&trg)),
            ),
            (
                "IntgPd",
                TypeDescription::Unsigned(32),
                Data::Unsigned(self.intg_pd as u64),
            ),
            ("GI", TypeDescription::Boolean, Data::Boolean(false)),
        ]);
        if self.buffered {
            v.extend([
                ("PurgeBuf", TypeDescription::Boolean, Data::Boolean(false)),
                (
                    "EntryID",
                    TypeDescription::OctetString(8),
                    Data::OctetString(vec![0; 8]),
                ),
                (
                    "TimeofEntry",
                    TypeDescription::BinaryTime(true),
                    Data::BinaryTime(crate::data::TimeOfDay {
                        millis: 0,
                        days: Some(0),
                    }),
                ),
                ("ResvTms", TypeDescription::Integer(16), Data::Integer(0)),
            ]);
        }
        v.push((
            "Owner",
            TypeDescription::OctetString(-64),
            Data::OctetString(Vec::new()),
        ));
        v
    }
}

/// Who changed a value of a [`SharedModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// The application, through [`SharedModel::set`].
    Application,
    /// A client, through an MMS Write (or a direct-control Oper mirrored into `stVal`).
    Client,
}

/// One value change of a [`SharedModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The domain (logical device) of the variable.
    pub domain: String,
    /// The MMS item name (`LN$FC$DO$DA`).
    pub item: String,
    /// The new value of `item`.
    pub value: Data,
    /// Who changed it.
    pub origin: ChangeOrigin,
}

/// Told of every change of a [`SharedModel`] ([`SharedModel::observe`]), after the change is
/// made and the model's lock released (an observer may read the model). Observers run on the
/// thread that made the change: one that has slow work to do hands it elsewhere (a channel).
pub trait ModelObserver: Send + Sync {
    /// One change.
    fn changed(&self, change: &Change);
}

impl<F: Fn(&Change) + Send + Sync> ModelObserver for F {
    fn changed(&self, change: &Change) {
        self(change)
    }
}

#[derive(Default)]
struct SharedInner {
    model: RwLock<Model>,
    observers: RwLock<Vec<Arc<dyn ModelObserver>>>,
}

/// A model shared by every association of a server and the application that serves it: the
/// application sets and reads values while clients read and write them, and observers learn of
/// every change. Readers and writers take the lock for one request at a time; a request that
/// fails changes nothing.
#[derive(Clone, Default)]
pub struct SharedModel(Arc<SharedInner>);

impl std::fmt::Debug for SharedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedModel")
            .field("observers", &self.observers().len())
            .finish_non_exhaustive()
    }
}

impl SharedModel {
    /// Wraps a model.
    pub fn new(model: Model) -> Self {
        SharedModel(Arc::new(SharedInner {
            model: RwLock::new(model),
            observers: RwLock::new(Vec::new()),
        }))
    }
    /// Read access. A poisoned lock (a panic elsewhere while writing) is recovered: every
    /// update is checked before it is applied, so the model stays consistent.
    pub fn read(&self) -> RwLockReadGuard<'_, Model> {
        self.0.model.read().unwrap_or_else(|e| e.into_inner())
    }
    /// Write access (see [`SharedModel::read`] on poisoning). Changes made through this guard
    /// are not reported to observers; [`SharedModel::set`] reports its own.
    pub fn write(&self) -> RwLockWriteGuard<'_, Model> {
        self.0.model.write().unwrap_or_else(|e| e.into_inner())
    }
    /// Sets the value of an existing attribute from the application side (no FC checks) and
    /// tells the observers. Returns false when the variable does not exist or the value does
    /// not fit its type.
    pub fn set(&self, domain: &str, item: &str, value: Data) -> bool {
        let stored = {
            let mut m = self.write();
            match m.domain_mut(domain).and_then(|d| d.resolve_mut(item)) {
                Some(n) if n.accepts(&value) => {
                    n.store(value.clone());
                    true
                }
                _ => false,
            }
        };
        if stored {
            self.notify(&[Change {
                domain: domain.to_string(),
                item: item.to_string(),
                value,
                origin: ChangeOrigin::Application,
            }]);
        }
        stored
    }
    /// Reads a variable.
    pub fn get(&self, domain: &str, item: &str) -> Option<Data> {
        self.read().read(domain, item)
    }
    /// Registers an observer of every later change (see [`ModelObserver`]).
    pub fn observe(&self, observer: Arc<dyn ModelObserver>) {
        self.0
            .observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }
    fn observers(&self) -> Vec<Arc<dyn ModelObserver>> {
        self.0
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Tells the observers of `changes` (called with the model's lock released).
    pub(crate) fn notify(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        for o in self.observers() {
            for c in changes {
                o.changed(c);
            }
        }
    }
}

impl From<Model> for SharedModel {
    fn from(m: Model) -> Self {
        SharedModel::new(m)
    }
}
