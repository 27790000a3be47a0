//! HandshakeDiagnostics and DtDiagnostics (§14.2).

macro_rules! diag_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr, $s:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }
        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// The ENUMERATED number on the wire.
            pub fn code(self) -> i64 {
                match self { $($name::$v => $n,)* }
            }
            /// The value for a number, if known.
            pub fn from_code(n: i64) -> Option<$name> {
                match n { $($n => Some($name::$v),)* _ => None }
            }
            /// The ASN.1 / XML name.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", self.name(), self.code())
            }
        }
    };
}

diag_enum! {
    /// `HandshakeDiagnostics` (§14.2.1). Numbers as tabulated (DECISION: unknown received numbers
    /// decode as `no-reason-given`, the raw value is logged).
    HandshakeDiagnostic {
        /// no-reason-given
        NoReasonGiven = 0, "no-reason-given";
        /// protocol-error
        ProtocolError = 1, "protocol-error";
        /// protected-protocol-not-supported
        ProtectedProtocolNotSupported = 2, "protected-protocol-not-supported";
        /// invalid-signatureAlgorithm
        InvalidSignatureAlgorithm = 3, "invalid-signatureAlgorithm";
        /// unexpected-version
        UnexpectedVersion = 4, "unexpected-version";
        /// hmac-algorithm-not-supported
        HmacAlgorithmNotSupported = 5, "hmac-algorithm-not-supported";
        /// encryption-not-required
        EncryptionNotRequired = 6, "encryption-not-required";
        /// encryption-required
        EncryptionRequired = 7, "encryption-required";
        /// invalid-public-key-certificate
        InvalidPublicKeyCertificate = 8, "invalid-public-key-certificate";
        /// invalid-certification-path
        InvalidCertificationPath = 9, "invalid-certification-path";
        /// invalid-time-value
        InvalidTimeValue = 10, "invalid-time-value";
        /// dhGroup-not-supported
        DhGroupNotSupported = 11, "dhGroup-not-supported";
        /// illegal-dhGroup-selected
        IllegalDhGroupSelected = 12, "illegal-dhGroup-selected";
        /// icv-algorithms-not-supported
        IcvAlgorithmsNotSupported = 13, "icv-algorithms-not-supported";
        /// encrypt-algorithms-not-supported
        EncryptAlgorithmsNotSupported = 14, "encrypt-algorithms-not-supported";
        /// aea-algorithms-not-supported
        AeaAlgorithmsNotSupported = 15, "aea-algorithms-not-supported";
        /// invalid-attribute-certificate
        InvalidAttributeCertificate = 16, "invalid-attribute-certificate";
        /// encr-mode-aea-not-supported (AMD1)
        EncrModeAeaNotSupported = 17, "encr-mode-aea-not-supported";
        /// ae-is-required
        AeIsRequired = 18, "ae-is-required";
        /// aea-select-but-encryp-not-supp
        AeaSelectButEncrypNotSupp = 19, "aea-select-but-encryp-not-supp";
        /// invalid-ae-algorithm
        InvalidAeAlgorithm = 20, "invalid-ae-algorithm";
        /// single-ae-algorithm-required
        SingleAeAlgorithmRequired = 21, "single-ae-algorithm-required";
        /// ae-not-used
        AeNotUsed = 22, "ae-not-used";
        /// invalid-encryption-algorithm
        InvalidEncryptionAlgorithm = 23, "invalid-encryption-algorithm";
        /// single-encrypt-algo-required
        SingleEncryptAlgoRequired = 24, "single-encrypt-algo-required";
        /// single-icv-algo-required (AMD1)
        SingleIcvAlgoRequired = 25, "single-icv-algo-required";
    }
}

diag_enum! {
    /// `DtDiagnostics` (§14.2.2). Numbers 10 and 11 are the §14.2.2 DECISION.
    DtDiagnostic {
        /// no-reason-given
        NoReasonGiven = 0, "no-reason-given";
        /// protocol-error
        ProtocolError = 1, "protocol-error";
        /// unexpected-version
        UnexpectedVersion = 2, "unexpected-version";
        /// encryption-not-selected
        EncryptionNotSelected = 3, "encryption-not-selected";
        /// encryption-required
        EncryptionRequired = 4, "encryption-required";
        /// gmac-nonce-required
        GmacNonceRequired = 5, "gmac-nonce-required";
        /// invalid-sequence-number
        InvalidSequenceNumber = 6, "invalid-sequence-number";
        /// aes-init-vector-required
        AesInitVectorRequired = 7, "aes-init-vector-required";
        /// unexpected-dhPublicKey
        UnexpectedDhPublicKey = 8, "unexpected-dhPublicKey";
        /// unexpected-changedKeys
        UnexpectedChangedKeys = 9, "unexpected-changedKeys";
        /// gmac-init-vector-required (number: §14.2.2 DECISION)
        GmacInitVectorRequired = 10, "gmac-init-vector-required";
        /// invalid-time-value (number: §14.2.2 DECISION)
        InvalidTimeValue = 11, "invalid-time-value";
    }
}

/// A diagnostic of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// HandshakeDiagnostics.
    Handshake(HandshakeDiagnostic),
    /// DtDiagnostics.
    Dt(DtDiagnostic),
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn codes_are_dense_and_unique() {
        for (i, d) in HandshakeDiagnostic::ALL.iter().enumerate() {
            assert_eq!(d.code(), i as i64);
            assert_eq!(HandshakeDiagnostic::from_code(i as i64), Some(*d));
        }
        for (i, d) in DtDiagnostic::ALL.iter().enumerate() {
            assert_eq!(d.code(), i as i64);
        }
        assert_eq!(HandshakeDiagnostic::ALL.len(), 26);
        assert_eq!(DtDiagnostic::ALL.len(), 12);
        assert_eq!(HandshakeDiagnostic::from_code(26), None);
    }
}
