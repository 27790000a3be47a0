//! Size limits of the E2E layer. Every decoder of network input is bounded by these and by the
//! BER [`secmms_ber::Limits`] passed in.

/// Largest SecPDU accepted: a 64 KiB PrPDU plus the E2E envelope (ClearToken2, tags,
/// Authenticator). Environments that reassemble larger TSDUs can carry it (Annex H).
pub const MAX_SECPDU: usize = MAX_PRPDU + 2048;
/// Largest certificate (Annex G.3: 8 192 octets).
pub const MAX_CERT: usize = 8192;
/// Largest certPath (a short path, §13.3.1.6: up to 4 CA certificates).
pub const MAX_CERT_PATH: usize = 4 * 8192;
/// Most DiffieHellman entries in a DiffieHellmanSet.
pub const MAX_DH_ENTRIES: usize = 8;
/// Largest DH public value (MODP-2048 is 256 octets; room for a leading zero).
pub const MAX_DH_VALUE: usize = 512;
/// Most AlgorithmIdentifiers in one list of ClearToken1.
pub const MAX_ALGORITHMS: usize = 16;
/// Longest `pp` token.
pub const MAX_PP: usize = 128;
/// Largest PrPDU (one BER element, all octets) the engine protects or delivers: 64 KiB.
pub const MAX_PRPDU: usize = 65_536;
/// Most entries of the handshake replay cache (oldest are evicted beyond this).
pub const MAX_REPLAY_ENTRIES: usize = 100_000;

/// BER limits used by default for SecPDU decoding: nesting as in `secmms_ber`, element length up
/// to [`MAX_SECPDU`].
pub const fn default_ber_limits() -> secmms_ber::Limits {
    secmms_ber::Limits {
        max_depth: secmms_ber::Limits::DEFAULT_MAX_DEPTH,
        max_len: MAX_SECPDU,
    }
}

/// Extra characters allowed in an XML SecPDU beyond twice its binary content: the tags of a
/// maximal ClearToken1 (16 algorithms per list, 8 DH entries) and of the PDU around it.
pub const XML_MARKUP_ALLOWANCE: usize = 16 * 1024;
/// Largest XML SecPDU accepted (octets of UTF-8 text): OCTET STRINGs double in `xs:hexBinary`,
/// so twice [`MAX_SECPDU`] plus [`XML_MARKUP_ALLOWANCE`].
pub const MAX_XML_SECPDU: usize = 2 * MAX_SECPDU + XML_MARKUP_ALLOWANCE;
/// Deepest element nesting accepted in an XML SecPDU. The schema needs 8 (SecPDU › tbs › token1
/// › encr-mode › non-aea › icvAlgID › AlgorithmIdentifier › algorithm); the rest is room for
/// skipped extension elements.
pub const MAX_XML_DEPTH: usize = 16;
/// Most elements in one XML SecPDU (a maximal ClearToken1 needs fewer than 200).
pub const MAX_XML_ELEMENTS: usize = 512;

/// Limits of the XML SecPDU decoder (clause 16), the counterpart of the BER
/// [`secmms_ber::Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest input in octets.
    pub max_len: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements (start tags) in one document.
    pub max_elements: usize,
    /// Limits for the BER octets carried inside (applData, algorithm parameters).
    pub ber: secmms_ber::Limits,
}

impl XmlLimits {
    /// XML limits matching BER limits: the size bound scales with `ber.max_len` as
    /// [`MAX_XML_SECPDU`] does with [`MAX_SECPDU`]; depth and element count are
    /// [`MAX_XML_DEPTH`] and [`MAX_XML_ELEMENTS`].
    pub const fn from_ber(ber: secmms_ber::Limits) -> XmlLimits {
        XmlLimits {
            max_len: ber
                .max_len
                .saturating_mul(2)
                .saturating_add(XML_MARKUP_ALLOWANCE),
            max_depth: MAX_XML_DEPTH,
            max_elements: MAX_XML_ELEMENTS,
            ber,
        }
    }
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits::from_ber(default_ber_limits())
    }
}
