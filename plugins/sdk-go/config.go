package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// ParseConfig decodes the plugin's config (JSON text, as the factory gets it)
// into dst, a pointer to a struct holding the defaults. Keys are the fields'
// `json` tags (or their names), matched exactly; a key that is not a field,
// or a value of the wrong type, is an error naming the key and what was
// expected:
//
//	drop_names: expected list, got string
//	colour: unknown key; expected one of drop_names, from, to
func ParseConfig(config string, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("ParseConfig needs a pointer to a struct, got %T", dst)
	}
	if strings.TrimSpace(config) == "" {
		config = "{}"
	}
	var table map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &table); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config: expected table, got %s", jsonKind(te.Value))
		}
		return fmt.Errorf("config is not JSON: %v", err)
	}
	fields := configFields(rv.Elem().Type())
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		idx, ok := fields[key]
		if !ok {
			known := make([]string, 0, len(fields))
			for k := range fields {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("%s: unknown key; expected one of %s", key, strings.Join(known, ", "))
		}
		if err := decodeStrict(table[key], rv.Elem().FieldByIndex(idx).Addr().Interface()); err != nil {
			return keyError(key, err)
		}
	}
	return nil
}

// configFields maps each key to its struct field.
func configFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		out[name] = f.Index
	}
	return out
}

func decodeStrict(raw json.RawMessage, dst any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(dst)
}

func keyError(key string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := key
		if te.Field != "" {
			where = key + "." + te.Field
		}
		return fmt.Errorf("%s: expected %s, got %s", where, typeName(te.Type), jsonKind(te.Value))
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown key %s", key, msg)
	}
	return fmt.Errorf("%s: %s", key, strings.TrimPrefix(err.Error(), "json: "))
}

// typeName names a Go type as a config author knows it.
func typeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer >= 0"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "table"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

// jsonKind names what the config held ("string", "number 1.5", "list", …).
func jsonKind(v string) string {
	switch {
	case v == "array":
		return "list"
	case v == "object":
		return "table"
	}
	return v
}
