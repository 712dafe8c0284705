# Derives the known-answer values of tests/kat.rs with OpenSSL (independent of our code):
#   python3 crates/keyward-sm/tests/kat_derivation.py
import subprocess, binascii
def sh(cmd, inp=None):
    return subprocess.run(cmd, input=inp, capture_output=True, check=True).stdout
def sha1(b): return sh(['openssl','dgst','-sha1','-binary'], b)
def cmac(k, d): return bytes.fromhex(sh(['openssl','mac','-cipher','AES-128-CBC','-macopt','hexkey:'+k.hex(),'CMAC'], d).decode().strip())
def ecb(k, b): return sh(['openssl','enc','-aes-128-ecb','-K',k.hex(),'-nopad'], b)
def cbc(k, iv, b): return sh(['openssl','enc','-aes-128-cbc','-K',k.hex(),'-iv',iv.hex(),'-nopad'], b)
def pad(b):
    b = b + b'\x80'
    while len(b) % 16: b += b'\x00'
    return b
K = bytes(range(1, 33)); r = bytes(range(0xA0, 0xA8))
kenc = sha1(K + r + b'\0\0\0\1')[:16]; kmac = sha1(K + r + b'\0\0\0\2')[:16]
print('kenc', kenc.hex()); print('kmac', kmac.hex())
oid = bytes.fromhex('04007F00070202030202')
pk = bytes([4]) + bytes(range(0x10, 0x50))
tok_in = bytes.fromhex('7F494F060A') + oid + bytes.fromhex('8641') + pk
print('token', cmac(kmac, tok_in)[:8].hex())
# Command 00 B1 2F 02, data 54 02 00 00, Le 256 (short) with SSC = 1
ssc = (1).to_bytes(16, 'big')
iv = ecb(kenc, ssc)
enc = cbc(kenc, iv, pad(bytes.fromhex('54020000')))
do85 = bytes([0x85, len(enc)]) + enc
do97 = bytes.fromhex('970100')
hdr = bytes.fromhex('0CB12F02')
mac = cmac(kmac, ssc + pad(hdr) + pad(do85 + do97))[:8]
data = do85 + do97 + bytes.fromhex('8E08') + mac
print('wrapped', (hdr + bytes([len(data)]) + data + b'\x00').hex())
# Response: data 01 02 03, SW 9000 with SSC = 2
ssc2 = (2).to_bytes(16, 'big')
iv2 = ecb(kenc, ssc2)
enc2 = cbc(kenc, iv2, pad(bytes.fromhex('010203')))
do87 = bytes([0x87, len(enc2) + 1, 1]) + enc2
do99 = bytes.fromhex('99029000')
mac2 = cmac(kmac, ssc2 + pad(do87 + do99))[:8]
print('response', (do87 + do99 + bytes.fromhex('8E08') + mac2 + bytes.fromhex('9000')).hex())
