package config

import (
	"reflect"
	"strings"
)

// String renders every key as "key = value", one per line in key order,
// with secrets shown as [REDACTED]. Safe to log.
func (c *Config) String() string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f.key)
		b.WriteString(" = ")
		b.WriteString(f.display(c))
		b.WriteByte('\n')
	}
	return b.String()
}

// Redacted returns the configuration as nested maps keyed like the TOML
// file (section -> key -> value), for JSON or TOML dumps. Sizes and
// durations are their human strings, secrets are [REDACTED].
func (c *Config) Redacted() map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		parts := strings.Split(f.key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = f.dumpValue(c)
	}
	return out
}

// Change is one key whose value differs between two configurations. Old
// and New are display forms with secrets redacted, so a changed secret
// shows as a change from [REDACTED] to [REDACTED].
type Change struct {
	Key        string
	Old, New   string
	Reloadable bool // see Reloadable
}

// Diff lists the keys whose values differ between old and new, in key
// order. A SIGHUP handler applies the Reloadable ones and reports the rest
// as needing a restart.
func Diff(old, new *Config) []Change {
	var out []Change
	for _, f := range fields {
		a, b := f.get(old).Interface(), f.get(new).Interface()
		if f.typ == stringMap {
			// nil and empty maps mean the same: no headers.
			ma, mb := a.(map[string]string), b.(map[string]string)
			if len(ma) == 0 && len(mb) == 0 {
				continue
			}
		}
		if reflect.DeepEqual(a, b) {
			continue
		}
		out = append(out, Change{Key: f.key, Old: f.display(old), New: f.display(new), Reloadable: f.reload})
	}
	return out
}
