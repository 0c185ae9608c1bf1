"""The names the formatter contract is written in, shared by the C glue's callers, the
pure-Python twin and the tests (the C core keeps its own enum, checked against these)."""

DTYPES = (
    "float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
    "int8", "int16", "int32", "int64", "uint8", "bool", "uint16", "uint32", "uint64",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
)
ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1,
    "float8_e5m2": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "bool": 1,
    "uint16": 2, "uint32": 4, "uint64": 8, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
}
FLOAT_DTYPES = frozenset(DTYPES[:6] + DTYPES[-3:])
FLOAT_FORMATS = ("exact", "shortest")
NONFINITE_POLICIES = ("error", "null", "string", "literal")
