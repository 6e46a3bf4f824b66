# Makes zran inflate contexts the way upstream nydus-image does, with the
# real zlib: inflate a gzip stream in Z_BLOCK mode and take block
# boundaries (total_in, total_out, data_type & 7 pending bits, the byte
# before, inflateGetDictionary). For each context it picks a range of
# output after it and records the exact compressed bytes zlib consumed to
# produce it (upstream's in_len). Usage: zlibcontexts.py LAYER.gz OUT.json
import ctypes, json, base64, sys
from zlibctypes import z, ZS, init  # rafs/internal/zlibdriver
gz = open(sys.argv[1], "rb").read()
ib = ctypes.create_string_buffer(gz, len(gz))
base = ctypes.addressof(ib)
# Pass 1: block boundaries of the first member.
s = init(31)
s.next_in = base; s.avail_in = len(gz)
out = ctypes.create_string_buffer(1 << 16)
bounds = []
dictbuf = ctypes.create_string_buffer(32768)
dlen = ctypes.c_uint()
while True:
    s.next_out = ctypes.addressof(out); s.avail_out = 1 << 16
    ret = z.inflate(ctypes.byref(s), 5)  # Z_BLOCK
    if ret == 1:
        break
    assert ret == 0, ret
    if s.data_type & 0x80 and not s.data_type & 0x40:
        bits = s.data_type & 7
        assert z.inflateGetDictionary(ctypes.byref(s), dictbuf, ctypes.byref(dlen)) == 0
        bounds.append({"In": s.total_in, "Out": s.total_out, "Bits": bits,
                       "Byte": gz[s.total_in - 1] if bits else 0, "Dict": base64.b64encode(dictbuf.raw[:dlen.value]).decode()})
member_out = s.total_out
# Pass 2: for some boundaries, the exact input zlib needs for a range after it.
cases = []
for i, b in enumerate(bounds):
    if i % max(1, len(bounds) // 40):
        continue
    skip = (i * 7919) % 60000
    want = min(100000 + (i * 104729) % 900000, member_out - b["Out"] - skip)
    if want <= 0:
        continue
    t = init(-15)
    if b["Bits"]:
        assert z.inflatePrime(ctypes.byref(t), b["Bits"], b["Byte"] >> (8 - b["Bits"])) == 0
    d = base64.b64decode(b["Dict"])
    if d:
        db = ctypes.create_string_buffer(d, len(d))
        assert z.inflateSetDictionary(ctypes.byref(t), db, len(d)) == 0
    t.next_in = base + b["In"]; t.avail_in = len(gz) - b["In"]
    ob = ctypes.create_string_buffer(skip + want)
    t.next_out = ctypes.addressof(ob); t.avail_out = skip + want
    ret = z.inflate(ctypes.byref(t), 0)
    assert ret in (0, 1) and t.avail_out == 0, (ret, t.avail_out)
    c = dict(b); c["InLen"] = t.total_in; c["Skip"] = skip; c["Len"] = want
    cases.append(c)
json.dump({"cases": cases, "boundaries": len(bounds)}, open(sys.argv[2], "w"))
