package marketplacetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// bindKeys maps the object keys of a decoded request body onto the JSON
// names of the Go type t, as Google's front end binds JSON to a proto
// message (the proto3 JSON mapping, protobuf.dev "ProtoJSON Format":
// "Parsers accept both the lowerCamelCase name ... and the original proto
// field name"). A key is accepted exactly as the JSON name (approvalName)
// or as the proto field name (approval_name) and renamed to the JSON name;
// anything else, including the JSON name in another case (APPROVALNAME,
// which encoding/json alone would accept), is 400 "Unknown name", as Google
// answers it. path names the object for the message ("" at the top).
func bindKeys(v any, t reflect.Type, path string) *apiError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			return bindObject(x, t, path)
		case reflect.Map:
			for k, val := range x {
				if e := bindKeys(val, t.Elem(), path+"["+k+"]"); e != nil {
					return e
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, val := range x {
				if e := bindKeys(val, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); e != nil {
					return e
				}
			}
		}
	}
	return nil // a type mismatch is reported by the decoder itself
}

func bindObject(obj map[string]any, t reflect.Type, path string) *apiError {
	fields := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // renaming below edits obj; and the first error is stable
	for _, key := range keys {
		val := obj[key]
		name := key
		if _, ok := fields[key]; !ok {
			name = lowerCamel(key)
			if _, ok := fields[name]; !ok || !strings.Contains(key, "_") {
				return unknownName(key, path)
			}
			if _, both := obj[name]; both {
				return invalidArgument("Invalid JSON payload received. Duplicate field %q%s.", key, at(path))
			}
			delete(obj, key)
			obj[name] = val
		}
		if e := bindKeys(val, fields[name], join(path, name)); e != nil {
			return e
		}
	}
	return nil
}

// jsonFields maps the JSON names of struct type t to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// lowerCamel is the proto3 JSON name of a proto field name: page_size ->
// pageSize.
func lowerCamel(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unknownName(key, path string) *apiError {
	return invalidArgument("Invalid JSON payload received. Unknown name %q%s: Cannot find field.", shorten(key, 64), at(path))
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf(" at '%s'", shorten(path, 100))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// bindBody decodes b, binds its keys to v's type and re-encodes it, so that
// the strict decode that follows sees only exact JSON names. Numbers stay
// json.Number: int64 values must not pass through float64.
func bindBody(b []byte, v any) ([]byte, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return b, nil // the strict decode reports it in Google's words
	}
	if e := bindKeys(raw, reflect.TypeOf(v), ""); e != nil {
		return nil, e
	}
	out, err := json.Marshal(raw)
	if err != nil {
		return b, nil
	}
	if dec.More() {
		out = append(out, " {}"...) // keep the trailing data for the strict decode to refuse
	}
	return out, nil
}
