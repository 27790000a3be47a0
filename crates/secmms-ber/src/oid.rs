//! OBJECT IDENTIFIER values (X.690 §8.19).

use crate::{BerError, Result};
use std::fmt;
use std::str::FromStr;

/// Most arcs an OID may have; longer ones are refused as hostile.
pub const MAX_OID_ARCS: usize = 32;

/// An OBJECT IDENTIFIER as its list of arcs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(Vec<u64>);

impl Oid {
    /// An OID from arcs. The first arc must be 0, 1 or 2, and the second below 40 unless the first
    /// is 2 (X.660).
    pub fn new(arcs: &[u64]) -> Result<Oid> {
        if arcs.len() < 2
            || arcs.len() > MAX_OID_ARCS
            || arcs[0] > 2
            || (arcs[0] < 2 && arcs[1] >= 40)
        {
            return Err(BerError::InvalidValue("OBJECT IDENTIFIER"));
        }
        Ok(Oid(arcs.to_vec()))
    }
    /// The arcs.
    pub fn arcs(&self) -> &[u64] {
        &self.0
    }
    /// Decodes content octets.
    pub fn from_ber_content(c: &[u8]) -> Result<Oid> {
        if c.is_empty() || c[c.len() - 1] & 0x80 != 0 {
            return Err(BerError::InvalidValue("OBJECT IDENTIFIER"));
        }
        let mut arcs = Vec::with_capacity(8);
        let mut v: u64 = 0;
        let mut started = false;
        for b in c {
            if !started && *b == 0x80 {
                return Err(BerError::InvalidValue("OBJECT IDENTIFIER"));
            }
            if v > (u64::MAX >> 7) {
                return Err(BerError::Overflow);
            }
            v = (v << 7) | (b & 0x7f) as u64;
            started = true;
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let (a, b) = match v {
                        0..=39 => (0, v),
                        40..=79 => (1, v - 40),
                        _ => (2, v - 80),
                    };
                    arcs.push(a);
                    arcs.push(b);
                } else {
                    arcs.push(v);
                }
                if arcs.len() > MAX_OID_ARCS {
                    return Err(BerError::InvalidValue("OBJECT IDENTIFIER"));
                }
                v = 0;
                started = false;
            }
        }
        Ok(Oid(arcs))
    }
    /// Encodes the content octets.
    pub fn to_ber_content(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 4);
        let first = self.0[0] * 40 + self.0[1];
        push_base128(first, &mut out);
        for a in &self.0[2..] {
            push_base128(*a, &mut out);
        }
        out
    }
}

fn push_base128(v: u64, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    let mut n = v;
    loop {
        i -= 1;
        tmp[i] = (n & 0x7f) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
        n >>= 7;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = BerError;
    fn from_str(s: &str) -> Result<Oid> {
        let arcs: std::result::Result<Vec<u64>, _> =
            s.split('.').map(|p| p.trim().parse::<u64>()).collect();
        Oid::new(&arcs.map_err(|_| BerError::InvalidValue("OBJECT IDENTIFIER"))?)
    }
}

/// Builds an [`Oid`] from literal arcs, panicking only on an invalid literal (for constants in code).
#[macro_export]
macro_rules! oid {
    ($($arc:expr),+ $(,)?) => {
        $crate::Oid::new(&[$($arc as u64),+]).expect("valid OID literal")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mms_abstract_syntax() {
        let o: Oid = "1.0.9506.2.1".parse().unwrap();
        assert_eq!(o.to_ber_content(), vec![0x28, 0xca, 0x22, 0x02, 0x01]);
        assert_eq!(
            Oid::from_ber_content(&[0x28, 0xca, 0x22, 0x02, 0x01]).unwrap(),
            o
        );
        assert_eq!(o.to_string(), "1.0.9506.2.1");
        let ber: Oid = "2.1.1".parse().unwrap();
        assert_eq!(ber.to_ber_content(), vec![0x51, 0x01]);
        assert_eq!(crate::oid!(2, 2, 1, 0, 1), "2.2.1.0.1".parse().unwrap());
    }

    #[test]
    fn bad_oids() {
        assert!(Oid::from_ber_content(&[]).is_err());
        assert!(Oid::from_ber_content(&[0x81]).is_err());
        assert!(Oid::from_ber_content(&[0x28, 0x80, 0x01]).is_err());
        assert!("1.50".parse::<Oid>().is_err());
    }
}
