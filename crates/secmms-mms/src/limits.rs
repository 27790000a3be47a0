//! Decoding limits and the negotiated-parameter decisions of the MMS layer.
//!
//! Every decoder in this crate takes an [`MmsLimits`]. The values a server proposes in the
//! initiate exchange (ISO 9506-2 §8.2, Initiate service) and the hard caps that bound work on
//! hostile input are named here, each with the reason it has its value.

/// Largest MMS PDU this implementation proposes and accepts, in octets (the `localDetail`
/// of Initiate, ISO 9506-2 §8.2.1.1.1). DECISION: 65 000 as libiec61850 and open61850 use
/// (reference §8), which also fits the 64 KiB TSDU limit of the OSI layers (Annex H).
pub const DEFAULT_MAX_PDU_SIZE: u32 = 65_000;

/// Smallest `localDetailCalling` a server accepts. DECISION: below this a single GetNameList
/// page or GetVariableAccessAttributes answer cannot fit, so the initiate is refused with
/// initiate-error `max-segment-insufficient` (ISO 9506-2 §8.2.1.1.1, ServiceError initiate(8) code 2).
pub const MIN_MAX_PDU_SIZE: u32 = 256;

/// Default `maxServOutstandingCalling`/`Called` proposal (ISO 9506-2 §8.2.1.1.2); 5 like the
/// open stacks (reference §8).
pub const DEFAULT_MAX_SERV_OUTSTANDING: u16 = 5;

/// Default `dataStructureNestingLevel` proposal (ISO 9506-2 §8.2.1.1.4); 10 like the open stacks.
pub const DEFAULT_NESTING_LEVEL: u8 = 10;

/// Hard cap on Data / TypeSpecification nesting whatever was negotiated. DECISION: the
/// deepest IEC 61850-8-1 object (LN → FC → DO → SDO → DA → BDA …) stays well under 20; 32 bounds
/// the recursion of the decoder on network input.
pub const HARD_MAX_NESTING: usize = 32;

/// Default cap on the number of elements of any SEQUENCE OF decoded from the network
/// (list of Data, of AccessResults, of identifiers, of variables).
pub const DEFAULT_MAX_LIST_LEN: usize = 16_384;

/// Longest MMS Identifier accepted. ISO 9506-2 limits Identifier to 32 characters, IEC 61850-8-1
/// Ed.2 extends item names to 64 and object references to 129; DECISION: accept up to 129.
pub const MAX_IDENTIFIER_LEN: usize = 129;

/// Longest free-text string (vendor name, visible-string Data, …) accepted, in octets.
pub const MAX_STRING_LEN: usize = 65_535;

/// BER nesting allowed around MMS Data: each TypeSpecification structure level costs four BER
/// levels (`A2 { A1 { 30 { A1 { … } } } }`), plus the PDU envelope.
const BER_LEVELS_PER_NESTING: usize = 4;
const BER_ENVELOPE_LEVELS: usize = 16;

/// Limits for decoding one MMS PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmsLimits {
    /// Largest PDU accepted, in octets (the negotiated `localDetail`).
    pub max_pdu_size: usize,
    /// Deepest Data / TypeSpecification nesting accepted (negotiated
    /// `dataStructureNestingLevel`, capped at [`HARD_MAX_NESTING`]).
    pub max_nesting: usize,
    /// Most elements in any SEQUENCE OF.
    pub max_list_len: usize,
}

impl Default for MmsLimits {
    fn default() -> Self {
        MmsLimits {
            max_pdu_size: DEFAULT_MAX_PDU_SIZE as usize,
            max_nesting: HARD_MAX_NESTING,
            max_list_len: DEFAULT_MAX_LIST_LEN,
        }
    }
}

impl MmsLimits {
    /// Limits derived from negotiated values: PDU size and nesting level (the nesting is
    /// raised to at least 1 and capped at [`HARD_MAX_NESTING`]).
    pub fn negotiated(max_pdu_size: u32, nesting_level: u8) -> Self {
        MmsLimits {
            max_pdu_size: max_pdu_size as usize,
            max_nesting: (nesting_level as usize).clamp(1, HARD_MAX_NESTING),
            max_list_len: DEFAULT_MAX_LIST_LEN,
        }
    }

    /// The BER reader limits that match these MMS limits.
    pub fn ber(&self) -> secmms_ber::Limits {
        let nesting = self.max_nesting.min(HARD_MAX_NESTING);
        secmms_ber::Limits {
            max_depth: nesting * BER_LEVELS_PER_NESTING + BER_ENVELOPE_LEVELS,
            max_len: self.max_pdu_size,
        }
    }
}
