# Independent computation of crypto golden vectors with pyca/cryptography.
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives import hashes
secret = bytes(range(32))
doc_id, rev, pt = b"inbox.1", b"abc:1", b"hello, syncbench"
nonce = bytes(range(0x10, 0x1c))
key = HKDF(hashes.SHA256(), 32, salt=b"syncbench key derivation v1", info=b"doc-key/v1\0" + doc_id).derive(secret)
aad = b"syncbench-doc/v1" + struct.pack(">I", len(doc_id)) + doc_id + struct.pack(">I", len(rev)) + rev
print("doc", (b"\x01" + nonce + AESGCM(key).encrypt(nonce, pt, aad)).hex())
salt = bytes(range(0x20, 0x30)); n2 = bytes(range(0x30, 0x3c))
k = Argon2id(salt=salt, length=32, iterations=1, lanes=1, memory_cost=64).derive(b"correct horse")
hdr = b"SBSK\x01" + struct.pack(">III", 64, 1, 1) + salt
print("sealed", (hdr + n2 + AESGCM(k).encrypt(n2, secret, hdr)).hex())
