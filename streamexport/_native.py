"""Pure-Python twin of the C formatter: the reference and the test oracle.

``format_chunk`` follows the contract in ``streamexport/formatter.py`` byte for byte. It is
written to be obviously right, not fast: every value is decoded from its bit pattern by the
definition of its format, and the ``shortest`` mode searches decimals with exact rational
arithmetic (``fractions.Fraction``), so no floating-point rounding of the host can leak in.

Helpers that the tests and benchmarks reuse:

* ``decode(bits, dtype)``        -- the exact value of a float bit pattern, as a Python float
                                    (every format here is a subset of float64);
* ``round_to_bits(q, dtype)``    -- the bit pattern a rational rounds to at ``dtype``
                                    (round to nearest, ties to even, the format's overflow);
* ``shortest_token(bits, dtype)``-- the ``shortest`` mode token of one element;
* ``layout(negative, digits, exp10)`` -- Python repr's layout of ``int(digits) * 10**exp10``.

Choices where the contract is silent (the C core makes the same ones):

* Validation order: dtype, float_format, nonfinite, shape (each dimension 0 <= d <= 2**63 - 1,
  their product <= 2**63 - 1), the range (start >= 0, count >= 0, start + count <= elements),
  then the buffer (C-contiguous, else BufferSizeError; exactly count * itemsize bytes).
* A chunk with ``count == 0`` of a non-empty tensor is ``b""``: brackets belong to elements.
* "Shortest" is the shortest *text*: the decimal with the fewest significant digits that
  rounds back, unless the exact token (repr of the widened value, which always rounds back) is
  shorter as text. That happens only when the fewest digits are a power of ten written out in
  fixed notation: bfloat16 9984 -> "9984.0", not "10000.0"; float8 96 -> "96.0", not "100.0".
  So a shortest token is never longer than the exact one.
* float8_e4m3fn rounds like IEEE with NaN for overflow: 464 (448 + ulp/2) rounds to 448 by
  ties-to-even, anything above is NaN, so 448's interval ends at 464 and its token is "450.0".
  (torch's own cast saturates everything above 448 to 448; a reader doing that accepts more.)
"""
import functools
import math
import operator
import struct
from fractions import Fraction

from .errors import (
    BufferSizeError, NonFiniteError, ShapeError, UnsupportedDtypeError,
)

from .dtypes import DTYPES, FLOAT_FORMATS, ITEMSIZE, NONFINITE_POLICIES  # noqa: F401

# struct codes (native byte order, standard sizes) of the dtypes whose elements are integers
# or IEEE binary32/binary64 the platform already decodes; the others are read as bit patterns.
_STRUCT = {
    "float64": "d", "float32": "f", "int8": "b", "int16": "h", "int32": "i", "int64": "q",
    "uint8": "B", "bool": "B", "uint16": "H", "uint32": "I", "uint64": "Q",
}
_BITS_STRUCT = {"float64": "Q", "float32": "I", "float16": "H", "bfloat16": "H",
                "float8_e4m3fn": "B", "float8_e5m2": "B", "float8_e4m3fnuz": "B",
                "float8_e5m2fnuz": "B", "float8_e8m0fnu": "B"}

MAX_ELEMENTS = 2 ** 63 - 1   # an element count must fit a signed 64-bit integer


class FloatFormat:
    """A binary floating-point format: a sign bit, ``exponent_bits``, ``mantissa_bits``.

    ``rule`` says where the NaNs (and infinities) are:
    * ``"ieee"``: the all-ones exponent holds infinities (mantissa 0) and NaNs (otherwise);
    * ``"fn"`` ("finite": float8_e4m3fn, float8_e8m0fnu): no infinities, only the all-ones
      exponent-and-mantissa pattern is NaN; the rest of the top binade holds finite values;
    * ``"fnuz"`` ("finite, unsigned zero": float8_e4m3fnuz, float8_e5m2fnuz): no infinities
      and no -0, whose pattern is the one NaN; their bias is one more than IEEE's.
    ``signed=False`` (float8_e8m0fnu): no sign bit, and no zero or subnormals either: the
    exponent field 0 is the lowest binade, 2**-bias.
    """

    def __init__(self, name, exponent_bits, mantissa_bits, rule, bias=None, signed=True):
        self.name = name
        self.exponent_bits = exponent_bits
        self.mantissa_bits = mantissa_bits
        self.rule = rule
        self.signed = signed
        self.subnormals = signed          # only the unsigned e8m0 has none
        self.bias = 2 ** (exponent_bits - 1) - 1 if bias is None else bias
        self.width = int(signed) + exponent_bits + mantissa_bits
        self.exponent_all_ones = 2 ** exponent_bits - 1
        self.mantissa_all_ones = 2 ** mantissa_bits - 1
        self.magnitude_all_ones = (1 << (exponent_bits + mantissa_bits)) - 1
        # largest finite pattern (positive)
        if rule == "ieee":
            self.max_bits = ((self.exponent_all_ones - 1) << mantissa_bits) | self.mantissa_all_ones
        elif rule == "fn":
            self.max_bits = self.magnitude_all_ones - 1
        else:
            self.max_bits = self.magnitude_all_ones
        self.max_significand, self.max_exponent = self.significand_exponent(self.max_bits)
        self.max_value = Fraction(self.max_significand) * Fraction(2) ** self.max_exponent
        # exponent of the lowest binade's ulp (the subnormals', where there are any)
        self.min_exponent = int(self.subnormals) - self.bias - mantissa_bits

    def fields(self, bits):
        sign = (bits >> (self.width - 1)) & 1 if self.signed else 0
        exponent = (bits >> self.mantissa_bits) & self.exponent_all_ones
        mantissa = bits & self.mantissa_all_ones
        return sign, exponent, mantissa

    def classify(self, bits):
        """'nan', 'inf' or 'finite'."""
        _, exponent, mantissa = self.fields(bits)
        if self.rule == "ieee":
            if exponent == self.exponent_all_ones:
                return "inf" if mantissa == 0 else "nan"
        elif self.rule == "fn":
            if bits & self.magnitude_all_ones == self.magnitude_all_ones:
                return "nan"
        elif bits == 1 << (self.width - 1):     # "fnuz": the pattern of -0
            return "nan"
        return "finite"

    def significand_exponent(self, bits):
        """(M, e) with |value| == M * 2**e for a finite pattern; M is the integer significand."""
        _, exponent, mantissa = self.fields(bits)
        if exponent == 0 and self.subnormals:   # zero and subnormals
            return mantissa, self.min_exponent
        return mantissa + (1 << self.mantissa_bits), exponent - self.bias - self.mantissa_bits

    def is_negative(self, bits):
        return bool(self.fields(bits)[0])


FORMATS = {
    "float64": FloatFormat("float64", 11, 52, "ieee"),
    "float32": FloatFormat("float32", 8, 23, "ieee"),
    "float16": FloatFormat("float16", 5, 10, "ieee"),
    "bfloat16": FloatFormat("bfloat16", 8, 7, "ieee"),
    "float8_e4m3fn": FloatFormat("float8_e4m3fn", 4, 3, "fn"),
    "float8_e5m2": FloatFormat("float8_e5m2", 5, 2, "ieee"),
    "float8_e4m3fnuz": FloatFormat("float8_e4m3fnuz", 4, 3, "fnuz", bias=8),
    "float8_e5m2fnuz": FloatFormat("float8_e5m2fnuz", 5, 2, "fnuz", bias=16),
    "float8_e8m0fnu": FloatFormat("float8_e8m0fnu", 8, 0, "fn", signed=False),
}


# ---- decoding ---------------------------------------------------------------------------

def decode(bits, dtype):
    """The value of a float bit pattern as a Python float (exact: all formats fit float64)."""
    fmt = FORMATS[dtype]
    kind = fmt.classify(bits)
    negative = fmt.is_negative(bits)
    if kind == "nan":
        return math.nan
    if kind == "inf":
        return -math.inf if negative else math.inf
    significand, exponent = fmt.significand_exponent(bits)
    value = math.ldexp(significand, exponent)   # exact: significand < 2**53, in range
    return -value if negative else value


def exact_value(bits, dtype):
    """The value of a finite pattern as a Fraction (the sign of zero is lost)."""
    fmt = FORMATS[dtype]
    significand, exponent = fmt.significand_exponent(bits)
    value = Fraction(significand) * Fraction(2) ** exponent
    return -value if fmt.is_negative(bits) else value


# ---- rounding a rational to a format ------------------------------------------------------

def _round_half_even(q):
    """The integer nearest to the Fraction q, ties to the even one."""
    return round_half_even(q.numerator, q.denominator)


def round_half_even(num, den):
    """The integer nearest to num / den (integers, den > 0), ties to the even one."""
    floor, rest = divmod(num, den)         # num / den == floor + rest / den, 0 <= rest < den
    twice = 2 * rest
    if twice > den or (twice == den and floor % 2 == 1):
        return floor + 1
    return floor


def binary_exponent(num, den):
    """e with 2**e <= num / den < 2**(e+1), for positive integers num and den."""

    def at_least(e):            # num / den >= 2**e, in integers
        return num >= den << e if e >= 0 else num << -e >= den

    e = num.bit_length() - den.bit_length()
    while not at_least(e):
        e -= 1
    while at_least(e + 1):
        e += 1
    return e


def round_to_bits(q, dtype, negative=None):
    """The bit pattern of ``dtype`` a rational ``q`` rounds to: round to nearest, ties to even.

    ``q`` is anything Fraction() takes exactly (int, float, Fraction, decimal string).
    An overflow gives infinity (IEEE formats) or NaN (the others, which have no infinity).
    As in IEEE arithmetic, "overflow" means that the value rounded with an unbounded exponent
    range exceeds the largest finite value: for IEEE formats that is ``q >= max + ulp/2``;
    float8_e4m3fn's max 448 has an even significand, so 464 (= 448 + ulp/2) still rounds to
    448 and only larger values overflow (what torch's conversion does too; its fnuz formats
    and float8_e8m0fnu round like this as well).
    ``negative`` gives the sign of a zero result (default: the sign of q); the fnuz formats
    have no -0 (its pattern is their NaN), so their zero is always +0. float8_e8m0fnu has
    neither sign nor zero: a negative q is NaN, and below its lowest value 2**-127 everything
    rounds to that.
    All arithmetic is on integers: q == num / den.
    """
    fmt = FORMATS[dtype]
    q = Fraction(q)
    if negative is None:
        negative = q < 0
    if not fmt.signed and negative:
        return fmt.magnitude_all_ones
    sign = (1 << (fmt.width - 1)) if negative else 0
    zero = 0 if fmt.rule == "fnuz" else sign
    num, den = abs(q.numerator), q.denominator
    if num == 0:
        return zero if fmt.subnormals else 0
    # the ulp's exponent: p bits of significand, never below the subnormals' ulp
    exponent = max(binary_exponent(num, den) - fmt.mantissa_bits, fmt.min_exponent)
    # significand = num / den / 2**exponent, rounded half to even
    if exponent >= 0:
        significand = round_half_even(num, den << exponent)
    else:
        significand = round_half_even(num << -exponent, den)
    if significand == 1 << (fmt.mantissa_bits + 1):     # rounded up into the next binade
        significand >>= 1
        exponent += 1
    if (exponent, significand) > (fmt.max_exponent, fmt.max_significand):   # both normalized
        if fmt.rule == "ieee":
            return sign | (fmt.exponent_all_ones << fmt.mantissa_bits)
        if fmt.rule == "fnuz":
            return 1 << (fmt.width - 1)
        return sign | fmt.magnitude_all_ones
    if significand < (1 << fmt.mantissa_bits):           # subnormal (or zero)
        assert exponent == fmt.min_exponent
        if not fmt.subnormals:
            return 0                                     # e8m0: its lowest value is nearest
        return sign | significand if significand else zero
    biased = exponent + fmt.bias + fmt.mantissa_bits
    return sign | (biased << fmt.mantissa_bits) | (significand - (1 << fmt.mantissa_bits))


# ---- decimal layout ---------------------------------------------------------------------

def layout(negative, digits, exp10):
    """Python repr's text of ``(-1)**negative * int(digits) * 10**exp10``.

    ``digits`` has no leading or trailing zeros (except the single "0" of zero). With the
    decimal exponent ``x`` of the first digit (scientific notation d.ddd * 10**x), repr writes
    fixed notation when -4 <= x < 16, with ".0" for integers, else d[.ddd]e(+|-)XX with at
    least two exponent digits.
    """
    sign = "-" if negative else ""
    if digits == "0":
        return sign + "0.0"
    point = len(digits) + exp10          # digits before the decimal point in fixed notation
    x = point - 1
    if -4 <= x < 16:
        if point <= 0:
            return sign + "0." + "0" * (-point) + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits)) + ".0"
        return sign + digits[:point] + "." + digits[point:]
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return "%s%se%s%02d" % (sign, mantissa, "-" if x < 0 else "+", abs(x))


# ---- shortest round-trip decimal -----------------------------------------------------------

def _decade(num, den):
    """j with 10**j <= num/den < 10**(j+1), for positive integers num and den."""

    def at_least(j):            # num/den >= 10**j, in integers
        return num >= 10 ** j * den if j >= 0 else num * 10 ** -j >= den

    j = len(str(num)) - len(str(den))
    while not at_least(j):
        j -= 1
    while at_least(j + 1):
        j += 1
    return j


def rounding_interval(bits, dtype):
    """(low, high, inclusive): the reals that round to this positive finite non-zero pattern.

    Every real strictly between ``low`` and ``high`` rounds to the pattern; the two ends do
    too when ``inclusive`` (ties go to the even significand). For the largest finite value,
    ``high`` is the overflow threshold max + ulp/2 (see round_to_bits).
    """
    fmt = FORMATS[dtype]
    significand, exponent = fmt.significand_exponent(bits)
    ulp = Fraction(2) ** exponent
    value = significand * ulp
    high = value + ulp / 2
    if significand == 1 << fmt.mantissa_bits and exponent > fmt.min_exponent:
        low = value - ulp / 4   # lowest of a binade: the gap below is half as wide
    else:
        low = value - ulp / 2
    return low, high, significand % 2 == 0


def shortest_digits(value, low, high, inclusive):
    """(digits, exp10): the decimal ``int(digits) * 10**exp10`` with the fewest significant
    digits in the interval from ``low`` to ``high`` (Fractions, 0 < low < value < high), the
    closest to ``value`` among those, and on a tie the one that rounding ``value``
    half-to-even at that many digits gives (as repr does).

    The search is plain: for n = 1, 2, ... list every decimal c * 10**k with n significant
    digits (10**(n-1) <= c < 10**n) inside the interval, in each decade the interval touches.
    All comparisons are exact, in integers over the common denominator of the three ends.
    """
    den = math.lcm(low.denominator, high.denominator, value.denominator)
    lo, hi = low.numerator * (den // low.denominator), high.numerator * (den // high.denominator)

    def scaled(c, k):           # c * 10**k * den as a fraction (numerator, denominator)
        return (c * 10 ** k * den, 1) if k >= 0 else (c * den, 10 ** -k)

    def inside(c, k):
        a, b = scaled(c, k)     # compare a/b with lo and hi (both over den, i.e. times 1)
        above = a > lo * b or (inclusive and a == lo * b)
        below = a < hi * b or (inclusive and a == hi * b)
        return above and below

    for n in range(1, 40):
        found = []
        for j in range(_decade(lo, den), _decade(hi, den) + 1):   # decades the interval touches
            k = j - n + 1                                          # exponent of the last digit
            a, b = scaled(1, k)                                    # 10**k == a / (b * den)
            first = max(-((-lo * b) // a), 10 ** (n - 1))          # ceil(low / 10**k)
            last = min((hi * b) // a, 10 ** n - 1)                 # floor(high / 10**k)
            for c in range(first, last + 1):
                if inside(c, k):
                    found.append((abs(c * Fraction(10) ** k - value), c, k))
        if found:
            best = min(d for d, _, _ in found)
            tied = [(c, k) for d, c, k in found if d == best]
            if len(tied) > 1:
                k = _decade(value.numerator, value.denominator) - n + 1
                target = _round_half_even(value / Fraction(10) ** k) * Fraction(10) ** k
                tied = [(c, k) for c, k in tied if c * Fraction(10) ** k == target]
                assert len(tied) == 1
            c, k = tied[0]
            # c has no trailing zero: c / 10 would have been found with n - 1 digits
            return str(c), k
    raise AssertionError("no decimal found")   # pragma: no cover


@functools.lru_cache(maxsize=1 << 18)   # the 16- and 8-bit dtypes have few patterns: compute each once
def shortest_token(bits, dtype):
    """The ``shortest`` token of a finite pattern of a float dtype: the fewest-digits token,
    or the exact token where that is shorter text."""
    fewest = fewest_digits_token(bits, dtype)
    exact = repr(decode(bits, dtype))
    return exact if len(exact) < len(fewest) else fewest


def fewest_digits_token(bits, dtype):
    """The closest decimal with the fewest significant digits that rounds back, laid out by repr."""
    fmt = FORMATS[dtype]
    negative = fmt.is_negative(bits)
    significand, _ = fmt.significand_exponent(bits)
    if significand == 0:
        return layout(negative, "0", 0)
    value = abs(exact_value(bits, dtype))
    low, high, inclusive = rounding_interval(bits, dtype)
    digits, exp10 = shortest_digits(value, low, high, inclusive)
    return layout(negative, digits, exp10)


# ---- the chunk formatter ----------------------------------------------------------------

_NONFINITE_TEXT = {
    "null": {"nan": "null", "inf": "null", "-inf": "null"},
    "string": {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'},
    "literal": {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"},
}


def _check_arguments(data, dtype, shape, start, count, float_format, nonfinite):
    """Validate everything; return (view of the bytes, shape tuple, element count)."""
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        raise UnsupportedDtypeError("unsupported dtype: %r" % (dtype,))
    if float_format not in FLOAT_FORMATS:
        raise ValueError("float_format must be one of %s, not %r" % (FLOAT_FORMATS, float_format))
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError("nonfinite must be one of %s, not %r" % (NONFINITE_POLICIES, nonfinite))
    shape = tuple(operator.index(d) for d in shape)
    start = operator.index(start)
    count = operator.index(count)
    for d in shape:
        if d < 0:
            raise ShapeError("negative dimension in shape %r" % (shape,))
        if d > MAX_ELEMENTS:
            raise ShapeError("dimension over 2**63 - 1 in shape %r" % (shape,))
    total = math.prod(shape)
    if total > MAX_ELEMENTS:
        raise ShapeError("shape %r has more than 2**63 - 1 elements" % (shape,))
    if start < 0 or count < 0 or start + count > total:
        raise ShapeError("range [%d, %d + %d) is outside a tensor of %d elements"
                         % (start, start, count, total))
    view = memoryview(data)
    if not view.c_contiguous:
        raise BufferSizeError("the data buffer is not C-contiguous")
    raw = view.cast("B") if view.ndim != 1 or view.format != "B" else view
    if raw.nbytes != count * ITEMSIZE[dtype]:
        raise BufferSizeError("buffer of %d bytes for %d %s elements (%d bytes)"
                              % (raw.nbytes, count, dtype, count * ITEMSIZE[dtype]))
    return raw, shape, total


def _empty_text(shape):
    """tolist() of an empty tensor: nested lists down to the first zero dimension."""
    if shape[0] == 0:
        return "[]"
    return "[" + ",".join([_empty_text(shape[1:])] * shape[0]) + "]"


def _separator(index, shape):
    """The text before element ``index`` (> 0): "]" * m + "," + "[" * m, m = dims closing."""
    m = 0
    for d in reversed(shape[1:]):
        if index % d:
            break
        index //= d
        m += 1
    return "]" * m + "," + "[" * m


def _token(value, bits, dtype, float_format):
    """The JSON text of one finite element."""
    if dtype == "bool":
        return "true" if value else "false"
    if dtype not in FORMATS:
        return str(value)
    if float_format == "shortest" and dtype != "float64":
        return shortest_token(bits, dtype)
    return repr(float(value))


def format_chunk(data, dtype, shape, start, count, float_format="exact", nonfinite="error"):
    """Format elements ``[start, start + count)`` of a tensor; see streamexport.formatter."""
    raw, shape, total = _check_arguments(data, dtype, shape, start, count, float_format,
                                         nonfinite)
    if total == 0:
        return _empty_text(shape).encode("ascii")
    raw = raw.tobytes()
    size = ITEMSIZE[dtype]
    is_float = dtype in FORMATS
    if is_float:
        bit_patterns = [b for (b,) in struct.iter_unpack("=" + _BITS_STRUCT[dtype], raw)]
        if dtype in ("float32", "float64"):
            values = [v for (v,) in struct.iter_unpack("=" + _STRUCT[dtype], raw)]
        else:
            values = [decode(b, dtype) for b in bit_patterns]
    else:
        values = [v for (v,) in struct.iter_unpack("=" + _STRUCT[dtype], raw)]
        bit_patterns = values
    assert len(values) == count == len(raw) // size

    parts = []
    ndim = len(shape)
    for offset, (value, bits) in enumerate(zip(values, bit_patterns)):
        index = start + offset
        if index == 0:
            parts.append("[" * ndim)
        else:
            parts.append(_separator(index, shape))
        if is_float and not math.isfinite(value):
            kind = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            if nonfinite == "error":
                raise NonFiniteError("non-finite value %s at flat index %d"
                                     % (kind, index), index=index)
            parts.append(_NONFINITE_TEXT[nonfinite][kind])
        else:
            parts.append(_token(value, bits, dtype, float_format))
        if index == total - 1:
            parts.append("]" * ndim)
    return "".join(parts).encode("ascii")
