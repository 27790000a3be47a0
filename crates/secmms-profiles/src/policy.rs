//! Peer policy — the bilateral table of IEC 62351-4 §5.1.
//!
//! Each entry names a peer (transport address, AP-title / AE-qualifier, expected certificate
//! subject) and the security the association with it must have: transport security
//! ([`TransportSecurity`]) and application security ([`ApplicationSecurity`]). §5.1 leaves
//! acceptance to local policy; secmms refuses every association that does not meet its entry.

use std::net::IpAddr;

use secmms_ber::Oid;
use secmms_pki::PeerIdentity;

/// Required transport security (§5.1 "T-security").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportSecurity {
    /// `DONT_CARE`: TLS or plain TCP.
    #[default]
    DontCare,
    /// `NON_SECURE`: plain TCP only (port 102).
    NonSecure,
    /// `SECURE`: TLS only (§6).
    Secure,
}

impl TransportSecurity {
    /// Whether a transport that is (`tls = true`) or is not TLS meets this requirement.
    pub fn allows(self, tls: bool) -> bool {
        match self {
            TransportSecurity::DontCare => true,
            TransportSecurity::NonSecure => !tls,
            TransportSecurity::Secure => tls,
        }
    }
}

/// Required application security (§5.1 "Application security").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplicationSecurity {
    /// `NON_SECURE`: no A-profile authentication is required. A value the peer sends anyway is
    /// still verified (DECISION: a bad value is never ignored).
    NonSecure,
    /// `SECURE`: the A-security-profile (clause 11) is required.
    #[default]
    Secure,
    /// `END-TO-END SECURE`: E2E security (clauses 12–15). The A-profile hook refuses such peers;
    /// the runtime must use the E2E hook for them.
    EndToEndSecure,
}

/// Which peers an entry applies to. Absent fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerMatch {
    /// Transport address of the peer (IP).
    pub address: Option<IpAddr>,
    /// AP-title (form 2) of the peer: calling-AP-title at a responder.
    pub ap_title: Option<Oid>,
    /// AE-qualifier (form 2) of the peer.
    pub ae_qualifier: Option<i64>,
}

impl PeerMatch {
    /// Whether the association parameters match. An entry field that is set requires the
    /// association to carry the same value.
    pub fn matches(&self, address: Option<IpAddr>, ap: Option<&Oid>, ae: Option<i64>) -> bool {
        fn ok<T: PartialEq>(want: Option<T>, got: Option<T>) -> bool {
            match want {
                None => true,
                Some(w) => got == Some(w),
            }
        }
        ok(self.address, address) && ok(self.ap_title.as_ref(), ap) && ok(self.ae_qualifier, ae)
    }
}

/// The name of the row that applies to peers matching no configured row (§5.1).
pub const DEFAULT_ROW_NAME: &str = "default";

/// One row of the bilateral table (§5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Name for logs.
    pub name: String,
    /// Which associations the row applies to.
    pub matcher: PeerMatch,
    /// Expected certificate subject (Annex G.6), checked in addition to the AP-title binding.
    pub certificate_subject: Option<PeerIdentity>,
    /// Required transport security.
    pub transport: TransportSecurity,
    /// Required application security.
    pub application: ApplicationSecurity,
    /// Initiator towards this peer: omit the mmsAuthenticationAS context and the
    /// indirect-reference (§11.3 DECISION, SISCO-style peers).
    pub sisco_compat: bool,
}

impl PeerPolicy {
    /// A row named `name` matching everything, requiring the A-profile over any transport.
    pub fn any(name: &str) -> PeerPolicy {
        PeerPolicy {
            name: name.to_string(),
            matcher: PeerMatch::default(),
            certificate_subject: None,
            transport: TransportSecurity::DontCare,
            application: ApplicationSecurity::Secure,
            sisco_compat: false,
        }
    }
}

/// The bilateral table: the first matching row applies; a peer that matches no row gets
/// `default`, or is refused when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerTable {
    /// Rows, in order of precedence.
    pub peers: Vec<PeerPolicy>,
    /// Row for peers that match no row (`None`: unknown peers are refused).
    pub default: Option<PeerPolicy>,
}

impl PeerTable {
    /// A table with no rows whose default requires the A-profile over any transport.
    pub fn require_a_profile() -> PeerTable {
        PeerTable {
            peers: Vec::new(),
            default: Some(PeerPolicy::any(DEFAULT_ROW_NAME)),
        }
    }

    /// A table with no rows whose default requires E2E security (native mode, clauses 13–15)
    /// over any transport.
    pub fn require_end_to_end() -> PeerTable {
        PeerTable {
            peers: Vec::new(),
            default: Some(PeerPolicy {
                application: ApplicationSecurity::EndToEndSecure,
                ..PeerPolicy::any(DEFAULT_ROW_NAME)
            }),
        }
    }

    /// The row that applies to these association parameters.
    pub fn find(
        &self,
        address: Option<IpAddr>,
        ap_title: Option<&Oid>,
        ae_qualifier: Option<i64>,
    ) -> Option<&PeerPolicy> {
        self.peers
            .iter()
            .find(|p| p.matcher.matches(address, ap_title, ae_qualifier))
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_transport() {
        let ap: Oid = "1.1.1.999".parse().unwrap();
        let row = PeerPolicy {
            matcher: PeerMatch {
                address: Some("10.0.0.1".parse().unwrap()),
                ap_title: Some(ap.clone()),
                ae_qualifier: Some(12),
            },
            transport: TransportSecurity::Secure,
            ..PeerPolicy::any("scada")
        };
        let t = PeerTable {
            peers: vec![row.clone()],
            default: None,
        };
        let ip = Some("10.0.0.1".parse().unwrap());
        assert_eq!(t.find(ip, Some(&ap), Some(12)), Some(&row));
        assert_eq!(t.find(ip, Some(&ap), Some(13)), None);
        assert_eq!(t.find(None, Some(&ap), Some(12)), None);
        assert_eq!(t.find(ip, None, Some(12)), None);
        assert!(row.transport.allows(true) && !row.transport.allows(false));
        assert!(TransportSecurity::NonSecure.allows(false));
        assert!(!TransportSecurity::NonSecure.allows(true));
        assert!(
            TransportSecurity::DontCare.allows(true) && TransportSecurity::DontCare.allows(false)
        );
        let d = PeerTable::require_a_profile();
        assert_eq!(d.find(None, None, None).unwrap().name, "default");
    }
}
