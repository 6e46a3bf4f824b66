# The real zlib (libz.so.1) through ctypes, for the zran tests' drivers:
# z is the library, ZS its z_stream, init(wbits) an inflate stream.
import ctypes
z = ctypes.CDLL("libz.so.1")
class ZS(ctypes.Structure):
    _fields_ = [("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
                ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
                ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p), ("zalloc", ctypes.c_void_p),
                ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p), ("data_type", ctypes.c_int),
                ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong)]
ver = z.zlibVersion; ver.restype = ctypes.c_char_p; V = ver()
def init(wbits):
    s = ZS()
    assert z.inflateInit2_(ctypes.byref(s), wbits, V, ctypes.sizeof(ZS)) == 0
    return s
