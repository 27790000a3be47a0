#!/usr/bin/env python3
"""Independent recomputation of an E2E handshake transcript (IEC 62351-4 §13.3.1.3 key schedule,
§13.4 protection) with the PyPI `cryptography` package.

Input: a JSON file written by tests/kat.rs with the hex of HandshakeReq, HandshakeAcc, the first
client→server protected PDU, its plaintext, the deterministic RNG seed and the agreed mode.
The script parses the BER itself, verifies both handshake signatures, derives the client DH
private value from the seed (same SHA-256 counter construction as the test RNG), recomputes Z,
the salt chain and the HKDF keys, and recomputes the protected PDU. It prints the derived keys
and exits 0 only if everything matches.
Exit code 3 means `cryptography` is not installed.
"""
import hashlib
import hmac
import json
import sys

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.asymmetric import ec, padding as apad, rsa
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:
    print("cryptography not installed")
    sys.exit(3)

RFC3526_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)


def tlv(buf, off):
    """Returns (tag, content_start, end) of the definite-length element at off."""
    tag = buf[off]
    off += 1
    if tag & 0x1F == 0x1F:
        while buf[off] & 0x80:
            off += 1
        off += 1
    n = buf[off]
    off += 1
    if n & 0x80:
        k = n & 0x7F
        assert 0 < k <= 4, "indefinite or huge length"
        n = int.from_bytes(buf[off:off + k], "big")
        off += k
    return tag, off, off + n


def children(buf, start, end):
    out = []
    while start < end:
        t, cs, e = tlv(buf, start)
        out.append((t, cs, e))
        start = e
    return out


def parse_handshake(b):
    t, cs, e = tlv(b, 0)
    assert t == 0x30 and e == len(b)
    pp, tbs, sign = children(b, cs, e)
    tbs_content = b[tbs[1]:tbs[2]]
    token1 = children(b, tbs[1], tbs[2])[0]
    fields = children(b, token1[1], token1[2])
    cert = b[fields[1][1]:fields[1][2]]
    # dhKey is the first SEQUENCE after the assoID (UTF8String).
    i = [f[0] for f in fields].index(0x0C)
    dh_set = fields[i + 1]
    first = children(b, dh_set[1], dh_set[2])[0]
    group_el, pub_el = children(b, first[1], first[2])
    group = int.from_bytes(b[group_el[1]:group_el[2]], "big", signed=True)
    pub = b[pub_el[1]:pub_el[2]]
    s_algo, s_val = children(b, sign[1], sign[2])
    return dict(tbs=tbs_content, cert=cert, group=group, pub=pub, sig=b[s_val[1]:s_val[2]])


def verify_sig(h):
    key = x509.load_der_x509_certificate(h["cert"]).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(h["sig"], h["tbs"], apad.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(h["sig"], h["tbs"], ec.ECDSA(hashes.SHA256()))


def rng_bytes(seed, n):
    out = b""
    ctr = 0
    while len(out) < n:
        out += hashlib.sha256(seed.to_bytes(8, "big") + ctr.to_bytes(8, "big")).digest()
        ctr += 1
    return out[:n]


def main():
    kat = json.load(open(sys.argv[1]))
    req = bytes.fromhex(kat["req"])
    acc = bytes.fromhex(kat["acc"])
    pdu = bytes.fromhex(kat["pdu"])
    plain = bytes.fromhex(kat["plain"])
    r = parse_handshake(req)
    a = parse_handshake(acc)
    verify_sig(r)
    verify_sig(a)
    assert r["group"] == a["group"], "group mismatch"
    x = int.from_bytes(rng_bytes(kat["client_seed"], 32), "big")
    if a["group"] == 14:
        assert r["pub"] == pow(2, x, RFC3526_P).to_bytes(256, "big"), "client public value"
        y = int.from_bytes(a["pub"], "big")
        assert 1 < y < RFC3526_P - 1
        z = pow(y, x, RFC3526_P).to_bytes(256, "big")
    else:
        curve = {23: ec.SECP256R1(), 28: ec.BrainpoolP256R1()}[a["group"]]
        priv = ec.derive_private_key(x, curve)
        from cryptography.hazmat.primitives import serialization
        mine = priv.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        assert mine == r["pub"], "client public value"
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, a["pub"])
        z = priv.exchange(ec.ECDH(), peer)
    salt0 = hashlib.sha256(r["tbs"] + b"\x00" * 32).digest()
    salt1 = hashlib.sha256(a["tbs"] + salt0).digest()
    mode = kat["mode"]
    length = {"aes128-gcm": 32, "aes256-cbc+hmac": 128}[mode]
    okm = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt1, info=None).derive(z)
    print("salt1", salt1.hex())
    print("okm", okm.hex())

    t, cs, e = tlv(pdu, 0)
    parts = children(pdu, cs, e)
    tbp = parts[0]
    tbp_content = pdu[tbp[1]:tbp[2]]
    token2, appl = children(pdu, tbp[1], tbp[2])
    aad = pdu[token2[1]:token2[2]]
    iv = [pdu[c[1]:c[2]] for c in children(pdu, token2[1], token2[2]) if c[0] == 0x80][0]
    ct = pdu[appl[1]:appl[2]]
    if mode == "aes128-gcm":
        assert len(parts) == 1, "auth must be absent in AE mode"
        k_c2s = okm[:16]
        enc = Cipher(algorithms.AES(k_c2s), modes.GCM(iv)).encryptor()
        enc.authenticate_additional_data(aad)
        mine = enc.update(plain) + enc.finalize()
        mine += enc.tag[:12]
        assert mine == ct, "GCM ciphertext differs"
        dec = Cipher(algorithms.AES(k_c2s), modes.GCM(iv, ct[-12:], min_tag_length=12)).decryptor()
        dec.authenticate_additional_data(aad)
        assert dec.update(ct[:-12]) + dec.finalize() == plain
    else:
        i_c2s, e_c2s = okm[0:32], okm[64:96]
        p = padding.PKCS7(128).padder()
        padded = p.update(plain) + p.finalize()
        enc = Cipher(algorithms.AES(e_c2s), modes.CBC(iv)).encryptor()
        assert enc.update(padded) + enc.finalize() == ct, "CBC ciphertext differs"
        auth = parts[1]
        icv_el = children(pdu, auth[1], auth[2])[-1]
        icv = pdu[icv_el[1]:icv_el[2]]
        assert hmac.new(i_c2s, tbp_content, hashlib.sha256).digest() == icv, "ICV differs"
    print("OK", mode)


if __name__ == "__main__":
    main()
