package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// RedactedValue is what a secret prints as.
const RedactedValue = "[REDACTED]"

// EnvPrefix starts every environment override; EnvConfig names the file.
const (
	EnvPrefix = "AOF2_"
	EnvConfig = "AOF2_CONFIG"
)

type secretKind int

const (
	notSecret secretKind = iota
	secretAlways
	secretSeed     // secret only when the value is an inline nkey seed
	secretValues   // map whose values are secrets, keys are not
	secretUserinfo // a URL (list) whose user:password@ part is secret
)

// field is one leaf key of Config, found by reflection over the koanf tags.
type field struct {
	key    string
	env    string
	index  []int
	typ    reflect.Type
	secret secretKind
	reload bool
}

var (
	bytesType    = reflect.TypeFor[Bytes]()
	durationType = reflect.TypeFor[Duration]()
	stringMap    = reflect.TypeFor[map[string]string]()
)

var (
	fields = buildSchema()
	byKey  = indexBy(func(f *field) string { return f.key })
	byEnv  = indexBy(func(f *field) string { return f.env })
)

func buildSchema() []*field {
	var out []*field
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name := sf.Tag.Get("koanf")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			idx := append(append([]int(nil), index...), i)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, key+".", idx)
				continue
			}
			f := &field{
				key:    key,
				env:    EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
				index:  idx,
				typ:    sf.Type,
				reload: sf.Tag.Get("reload") == "true",
			}
			switch sf.Tag.Get("secret") {
			case "always":
				f.secret = secretAlways
			case "seed":
				f.secret = secretSeed
			case "values":
				f.secret = secretValues
			case "userinfo":
				f.secret = secretUserinfo
			}
			out = append(out, f)
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func indexBy(name func(*field) string) map[string]*field {
	m := make(map[string]*field, len(fields))
	for _, f := range fields {
		n := name(f)
		if prev, dup := m[n]; dup {
			// Two keys flattening to one environment name would make the
			// mapping ambiguous; this is a programming error in Config.
			panic(fmt.Sprintf("config: keys %q and %q share the name %q", prev.key, f.key, n))
		}
		m[n] = f
	}
	return m
}

// Keys returns every configuration key, sorted.
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

// EnvName returns the environment variable that sets key, or "" if key is
// unknown.
func EnvName(key string) string {
	if f, ok := byKey[key]; ok {
		return f.env
	}
	return ""
}

// Reloadable reports whether a running gateway may apply a change of key
// without a restart: tier budgets, retention, retry and breaker policy,
// worker counts and the log level. Listener addresses, names, paths and
// formats need a restart.
func Reloadable(key string) bool {
	f, ok := byKey[key]
	return ok && f.reload
}

// isSecret reports whether the value v of f must be hidden.
func (f *field) isSecret(v string) bool {
	switch f.secret {
	case secretAlways:
		return v != ""
	case secretSeed:
		return isInlineSeed(v)
	}
	return false
}

// isInlineSeed reports whether s is an nkey seed rather than a path to one.
// Seeds are base32 strings starting with 'S' ("SU..." for users).
func isInlineSeed(s string) bool {
	return len(s) > 2 && s[0] == 'S' && !strings.ContainsAny(s, `/\.`)
}

// get returns the field's value in c.
func (f *field) get(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

// display renders the field's value in c for humans, with secrets hidden.
func (f *field) display(c *Config) string {
	v := f.get(c)
	switch f.typ {
	case stringMap:
		return formatMap(v.Interface().(map[string]string), f.secret == secretValues)
	}
	s := fmt.Sprint(v.Interface())
	if f.typ.Kind() == reflect.String {
		if f.isSecret(s) {
			return RedactedValue
		}
		if f.secret == secretUserinfo {
			s = RedactUserinfo(s)
		}
		return strconv.Quote(s)
	}
	return s
}

// RedactUserinfo hides the user:password@ part of every URL in a
// comma-separated list ("nats://u:p@h:4222" -> "nats://[REDACTED]@h:4222"),
// with or without a scheme.
func RedactUserinfo(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if start, at, ok := userinfoSpan(p); ok {
			parts[i] = p[:start] + RedactedValue + p[at:]
		}
	}
	return strings.Join(parts, ",")
}

// userinfoSecrets returns the user:password parts of the URLs in s.
func userinfoSecrets(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if start, at, ok := userinfoSpan(p); ok && at > start {
			out = append(out, p[start:at])
		}
	}
	return out
}

// userinfoSpan locates the user info of one URL: p[start:at] precedes the
// last "@", after the scheme if there is one.
func userinfoSpan(p string) (start, at int, ok bool) {
	at = strings.LastIndex(p, "@")
	if at < 0 {
		return 0, 0, false
	}
	if sch := strings.Index(p, "://"); sch >= 0 && sch < at {
		start = sch + 3
	}
	return start, at, true
}

// dumpValue is the value placed in Config.Redacted(): native types for numbers
// and booleans, human strings for sizes and durations.
func (f *field) dumpValue(c *Config) any {
	v := f.get(c)
	switch f.typ {
	case bytesType, durationType:
		return fmt.Sprint(v.Interface())
	case stringMap:
		m := v.Interface().(map[string]string)
		out := make(map[string]any, len(m))
		for k, val := range m {
			if f.secret == secretValues {
				val = RedactedValue
			}
			out[k] = val
		}
		return out
	}
	if f.typ.Kind() == reflect.String && f.isSecret(v.String()) {
		return RedactedValue
	}
	if f.secret == secretUserinfo {
		return RedactUserinfo(v.String())
	}
	return v.Interface()
}

func formatMap(m map[string]string, secretValues bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := m[k]
		if secretValues {
			v = RedactedValue
		}
		fmt.Fprintf(&b, "%s = %q", strconv.Quote(k), v)
	}
	b.WriteByte('}')
	return b.String()
}

// coerce converts a raw layer value (TOML-native, an environment string or
// a flag string) to the exact Go type of f. The returned problem never
// contains a secret value.
func (f *field) coerce(raw any) (any, string) {
	show := func(s string) string {
		switch f.secret {
		case notSecret:
		case secretUserinfo:
			return strconv.Quote(RedactUserinfo(s))
		default:
			return RedactedValue
		}
		return strconv.Quote(s)
	}
	s, isStr := raw.(string)
	switch f.typ {
	case bytesType:
		switch v := raw.(type) {
		case string:
			b, err := ParseBytes(v)
			if err != nil {
				return nil, err.Error()
			}
			return b, ""
		case int64:
			return Bytes(v), ""
		case int:
			return Bytes(v), ""
		case Bytes:
			return v, ""
		}
		return nil, fmt.Sprintf("must be a byte size like \"64MiB\" or an integer, got %s", typeName(raw))
	case durationType:
		switch v := raw.(type) {
		case string:
			d, err := ParseDuration(v)
			if err != nil {
				return nil, err.Error()
			}
			return d, ""
		case Duration:
			return v, ""
		case int64, int, float64:
			return nil, "must be a duration string with a unit like \"250ms\" or \"5m\", got a bare number"
		}
		return nil, fmt.Sprintf("must be a duration like \"5m\", got %s", typeName(raw))
	case stringMap:
		return f.coerceMap(raw)
	}
	switch f.typ.Kind() {
	case reflect.String:
		if isStr {
			return s, ""
		}
		return nil, fmt.Sprintf("must be a string, got %s", typeName(raw))
	case reflect.Bool:
		switch v := raw.(type) {
		case bool:
			return v, ""
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Sprintf("invalid boolean %s (use true or false)", show(v))
			}
			return b, ""
		}
		return nil, fmt.Sprintf("must be true or false, got %s", typeName(raw))
	case reflect.Int:
		switch v := raw.(type) {
		case int64:
			return int(v), ""
		case int:
			return v, ""
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 0)
			if err != nil {
				return nil, fmt.Sprintf("invalid integer %s", show(v))
			}
			return int(n), ""
		}
		return nil, fmt.Sprintf("must be an integer, got %s", typeName(raw))
	case reflect.Float64:
		switch v := raw.(type) {
		case float64:
			return v, ""
		case int64:
			return float64(v), ""
		case int:
			return float64(v), ""
		case string:
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Sprintf("invalid number %s", show(v))
			}
			return n, ""
		}
		return nil, fmt.Sprintf("must be a number, got %s", typeName(raw))
	}
	return nil, fmt.Sprintf("unsupported type %s", f.typ)
}

// coerceMap accepts a TOML table of strings, a map from a flag, or the
// environment form "k1=v1,k2=v2".
func (f *field) coerceMap(raw any) (any, string) {
	out := map[string]string{}
	switch v := raw.(type) {
	case map[string]string:
		for k, val := range v {
			out[k] = val
		}
	case map[string]any:
		for k, val := range v {
			s, ok := val.(string)
			if !ok {
				return nil, fmt.Sprintf("value of %q must be a string, got %s", k, typeName(val))
			}
			out[k] = s
		}
	case string:
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, val, ok := strings.Cut(part, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, "must be a list of key=value pairs separated by commas"
			}
			out[k] = strings.TrimSpace(val)
		}
	default:
		return nil, fmt.Sprintf("must be a table of strings, got %s", typeName(raw))
	}
	return out, ""
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64:
		return "an integer"
	case float64:
		return "a float"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a %T", v)
}
