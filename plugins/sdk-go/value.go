package plugin

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Kind is the type of a Value; the numbers are the contract's tag bytes.
type Kind uint8

const (
	KindAbsent Kind = iota
	KindStr
	KindInt
	KindDouble
	KindBool
	KindBytes
	// KindJSON is an array or map, as OTLP/JSON text (or plain JSON when written).
	KindJSON
)

func (k Kind) String() string {
	names := [...]string{"absent", "str", "int", "double", "bool", "bytes", "json"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is an attribute value or log body. The zero Value is absent.
type Value struct {
	kind Kind
	text string // KindStr, KindJSON
	num  uint64 // KindInt, KindDouble (bits), KindBool (0/1)
	raw  []byte // KindBytes
}

// Str, Int, Double, Bool, Bytes and JSON make the values edits write.
func Str(s string) Value     { return Value{kind: KindStr, text: s} }
func Int(n int64) Value      { return Value{kind: KindInt, num: uint64(n)} }
func Double(f float64) Value { return Value{kind: KindDouble, num: math.Float64bits(f)} }
func Bytes(b []byte) Value   { return Value{kind: KindBytes, raw: b} }
func JSON(text string) Value { return Value{kind: KindJSON, text: text} }
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}

// ValueOf converts a Go value: nil (absent), string, bool, any int or uint
// type, float32/64, []byte, a Value, or anything else encoding/json can write
// (slices and maps become KindJSON).
func ValueOf(x any) (Value, error) {
	switch v := x.(type) {
	case nil:
		return Value{}, nil
	case Value:
		return v, nil
	case string:
		return Str(v), nil
	case bool:
		return Bool(v), nil
	case int:
		return Int(int64(v)), nil
	case int8:
		return Int(int64(v)), nil
	case int16:
		return Int(int64(v)), nil
	case int32:
		return Int(int64(v)), nil
	case int64:
		return Int(v), nil
	case uint:
		return Int(int64(v)), nil
	case uint8:
		return Int(int64(v)), nil
	case uint16:
		return Int(int64(v)), nil
	case uint32:
		return Int(int64(v)), nil
	case uint64:
		if v > math.MaxInt64 {
			return Value{}, fmt.Errorf("%d does not fit an OTLP int (int64)", v)
		}
		return Int(int64(v)), nil
	case float32:
		return Double(float64(v)), nil
	case float64:
		return Double(v), nil
	case []byte:
		return Bytes(v), nil
	}
	text, err := json.Marshal(x)
	if err != nil {
		return Value{}, fmt.Errorf("cannot send a %T to weir: %w", x, err)
	}
	return JSON(string(text)), nil
}

func (v Value) Kind() Kind      { return v.kind }
func (v Value) IsAbsent() bool  { return v.kind == KindAbsent }
func (v Value) Str() string     { return v.text } // the text of a KindStr (or KindJSON) value
func (v Value) Int() int64      { return int64(v.num) }
func (v Value) Double() float64 { return math.Float64frombits(v.num) }
func (v Value) Bool() bool      { return v.num == 1 }
func (v Value) Bytes() []byte   { return v.raw }
func (v Value) JSON() string    { return v.text }

// Text is the value as the host's matchers compare it: strings and JSON as
// they are, ints and doubles in decimal, bools as true/false; false for
// absent values and bytes.
func (v Value) Text() (string, bool) {
	switch v.kind {
	case KindStr, KindJSON:
		return v.text, true
	case KindInt:
		return strconv.FormatInt(v.Int(), 10), true
	case KindDouble:
		return formatDouble(v.Double()), true
	case KindBool:
		return strconv.FormatBool(v.Bool()), true
	}
	return "", false
}

// formatDouble writes a double as the host (Rust's Display for f64) does.
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// String shows a value for logs and test failures.
func (v Value) String() string {
	switch v.kind {
	case KindAbsent:
		return "<absent>"
	case KindStr:
		return strconv.Quote(v.text)
	case KindBytes:
		return "0x" + hex.EncodeToString(v.raw)
	}
	t, _ := v.Text()
	return t
}

// Equal reports whether two values are the same kind and content.
func (v Value) Equal(o Value) bool {
	return v.kind == o.kind && v.text == o.text && v.num == o.num && string(v.raw) == string(o.raw)
}

// EncodeValue is a value's tagged encoding: one tag byte, then the payload
// (absent is the single byte 0).
func EncodeValue(v Value) []byte {
	out := []byte{byte(v.kind)}
	switch v.kind {
	case KindStr, KindJSON:
		out = append(out, v.text...)
	case KindInt, KindDouble:
		out = binary.LittleEndian.AppendUint64(out, v.num)
	case KindBool:
		out = append(out, byte(v.num))
	case KindBytes:
		out = append(out, v.raw...)
	}
	return out
}

// DecodeValue reads a tagged value; an empty or unknown entry is absent.
func DecodeValue(b []byte) Value {
	if len(b) == 0 {
		return Value{}
	}
	rest := b[1:]
	eight := func() uint64 {
		if len(rest) != 8 {
			return 0
		}
		return binary.LittleEndian.Uint64(rest)
	}
	switch Kind(b[0]) {
	case KindStr:
		return Str(string(rest))
	case KindInt:
		return Value{kind: KindInt, num: eight()}
	case KindDouble:
		return Value{kind: KindDouble, num: eight()}
	case KindBool:
		return Bool(len(rest) > 0 && rest[0] == 1)
	case KindBytes:
		return Bytes(append([]byte(nil), rest...))
	case KindJSON:
		return JSON(string(rest))
	}
	return Value{}
}

// Len is the number of entities in the column.
func (c Column) Len() int {
	if len(c.Offsets) == 0 {
		return 0
	}
	return len(c.Offsets) - 1
}

// Raw is entity i's bytes (shared with the column: copy before keeping).
func (c Column) Raw(i int) []byte {
	return c.Data[c.Offsets[i]:c.Offsets[i+1]]
}

// Str is entity i's text field (FieldName, FieldStatusMessage, ...).
func (c Column) Str(i int) string { return string(c.Raw(i)) }

// Strs is every entity's text field.
func (c Column) Strs() []string {
	out := make([]string, c.Len())
	for i := range out {
		out[i] = c.Str(i)
	}
	return out
}

// Int32 is a 4-byte signed field (kind, status code, severity number); false
// where the entity has none.
func (c Column) Int32(i int) (int32, bool) {
	b := c.Raw(i)
	if len(b) != 4 {
		return 0, false
	}
	return int32(binary.LittleEndian.Uint32(b)), true
}

// Uint32 is a 4-byte unsigned field (flags).
func (c Column) Uint32(i int) (uint32, bool) {
	b := c.Raw(i)
	if len(b) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

// Uint64 is an 8-byte field (times, in Unix nanoseconds).
func (c Column) Uint64(i int) (uint64, bool) {
	b := c.Raw(i)
	if len(b) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

// Hex is an id field (trace id, span id) in lowercase hex; "" where absent.
func (c Column) Hex(i int) string { return hex.EncodeToString(c.Raw(i)) }

// Value is entity i's tagged value (attribute columns, FieldBody).
func (c Column) Value(i int) Value { return DecodeValue(c.Raw(i)) }

// Values is every entity's tagged value.
func (c Column) Values() []Value {
	out := make([]Value, c.Len())
	for i := range out {
		out[i] = c.Value(i)
	}
	return out
}

// FieldText is a field entry as the host's matchers compare it (text fields
// as they are, ids in lowercase hex, numbers in decimal, a log body by its
// value's text); false when absent.
func FieldText(f Field, b []byte) (string, bool) {
	switch {
	case f == FieldBody:
		return DecodeValue(b).Text()
	case f.IsText():
		return string(b), true
	case f == FieldTraceID || f == FieldSpanID || f == FieldParentSpanID:
		return hex.EncodeToString(b), len(b) > 0
	case len(b) == 4 && (f == FieldKind || f == FieldStatusCode || f == FieldSeverityNumber):
		return strconv.FormatInt(int64(int32(binary.LittleEndian.Uint32(b))), 10), true
	case len(b) == 4:
		return strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b)), 10), true
	case len(b) == 8:
		return strconv.FormatUint(binary.LittleEndian.Uint64(b), 10), true
	}
	return "", false
}
