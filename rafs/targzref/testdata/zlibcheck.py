# Decodes our zran contexts with real zlib the way upstream nydusd
# does (raw inflate, inflatePrime, inflateSetDictionary, skip trailer +
# gzip header at member ends), then check every chunk's sha256.
import ctypes, json, base64, hashlib, sys
from zlibctypes import z, ZS, init  # rafs/internal/zlibdriver
Z_OK, Z_STREAM_END, Z_BLOCK = 0, 1, 5
def decode(ctx, inp):
    s = init(-15)
    if ctx["Bits"]:
        b = ctx["Bits"]
        assert z.inflatePrime(ctypes.byref(s), b, ctx["Byte"] >> (8 - b)) == 0
    d = base64.b64decode(ctx["Dict"]) if ctx["Dict"] else b""
    if d:
        db = ctypes.create_string_buffer(d, len(d))
        assert z.inflateSetDictionary(ctypes.byref(s), db, len(d)) == 0
    ib = ctypes.create_string_buffer(inp, len(inp))
    out = ctypes.create_string_buffer(ctx["OutLen"])
    s.next_in = ctypes.addressof(ib); s.avail_in = len(inp)
    left = ctx["OutLen"]
    while True:
        used = ctx["OutLen"] - left
        s.next_out = ctypes.addressof(out) + used; s.avail_out = left
        got = s.avail_out
        ret = z.inflate(ctypes.byref(s), 0)
        left -= got - s.avail_out
        if ret == Z_OK:
            assert left == 0, ("short", left)
            return out.raw
        if ret != Z_STREAM_END:
            raise Exception(f"inflate ret {ret} {s.msg}")
        if left == 0:
            return out.raw
        assert s.avail_in >= 8, "no trailer"
        s.next_in += 8; s.avail_in -= 8
        assert z.inflateReset2(ctypes.byref(s), 31) == 0
        disc = ctypes.create_string_buffer(32768)
        while True:
            s.next_out = ctypes.addressof(disc); s.avail_out = 32768
            ret = z.inflate(ctypes.byref(s), Z_BLOCK)
            if ret == Z_OK and (s.data_type & 0x80) == 0:
                continue
            assert ret == Z_OK, ret
            assert z.inflateReset2(ctypes.byref(s), -15) == 0
            break
for name in sys.argv[2:]:
    gz = open(f"{sys.argv[1]}/{name}.gz", "rb").read()
    meta = json.load(open(f"{sys.argv[1]}/{name}.json"))
    outs = [decode(c, gz[c["In"]:c["In"] + c["InLen"]]) for c in meta["ctxs"]]
    bad = sum(1 for ch in meta["chunks"] if hashlib.sha256(outs[ch["Ctx"]][ch["Off"]:ch["Off"] + ch["Size"]]).digest() != base64.b64decode(ch["Digest"]))
    print(name, len(meta["ctxs"]), "contexts,", sum(1 for c in meta["ctxs"] if c["Bits"]), "mid-byte,", len(meta["chunks"]), "chunks; zlib digest mismatches:", bad)
