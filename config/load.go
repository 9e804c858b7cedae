package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// ConfigFlag is the flag that names the configuration file.
const ConfigFlag = "config"

// Error is one configuration problem. Its text starts with "config: " and
// names the key and what is wrong; it never contains a secret value.
type Error struct {
	// Key is the dotted key concerned; "" when the problem is the file
	// itself (missing, malformed) or an unknown environment variable.
	Key string
	// Source is where the offending value came from: the file path,
	// "env AOF2_..." or "flag --..."; "" for checks on the merged result.
	Source string
	// Msg is the message without the "config: " prefix.
	Msg string
}

func (e *Error) Error() string { return "config: " + e.Msg }

// LoadOptions selects the inputs of Load. The zero value loads defaults,
// the default file if present and os.Environ().
type LoadOptions struct {
	// File is the configuration file; it must exist when set.
	File string
	// DefaultFile replaces ~/.config/bop-aof/config.toml as the file read
	// when none is named (tests point it at a temporary path).
	DefaultFile string
	// Env is the environment as "NAME=value" entries; nil means os.Environ().
	Env []string
	// Flags are parsed command-line flags. Only flags that were Changed
	// override. A flag named like a key (--tier0.cluster_max_bytes) sets
	// that key; a changed --config names the file when File is empty;
	// other flags are ignored unless listed in FlagKeys.
	Flags *pflag.FlagSet
	// FlagKeys maps further flag names to keys, for short aliases such as
	// "data-root" -> "data_root". A mapping to an unknown key is an error.
	FlagKeys map[string]string
}

// DefaultPath returns ~/.config/bop-aof/config.toml ("" when the home
// directory is unknown).
func DefaultPath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "bop-aof", "config.toml")
}

// Load builds the configuration from defaults, the file, the environment
// and the flags (each overriding the previous), then validates it. Every
// problem found is reported, joined with errors.Join; each is an *Error.
// Input problems (missing or malformed file, unknown keys or variables,
// values of the wrong type) are reported first and alone: validating a
// configuration with dropped values would only add misleading messages.
func Load(opts LoadOptions) (*Config, error) {
	environ := opts.Env
	if environ == nil {
		environ = os.Environ()
	}
	l := &loader{k: koanf.New(".")}
	if err := l.k.Load(confmap.Provider(flatten(Default()), "."), nil); err != nil {
		return nil, fmt.Errorf("config: load defaults: %w", err)
	}

	path, explicit, err := resolveFile(opts, environ)
	if err != nil {
		l.fail("", "", err.Error())
	} else if path != "" {
		l.loadFile(path, explicit)
	}
	l.loadEnv(environ)
	if opts.Flags != nil {
		l.loadFlags(opts.Flags, opts.FlagKeys)
	}
	if len(l.errs) > 0 {
		return nil, joinScrubbed(l.errs, l.secrets)
	}

	cfg := &Config{}
	dc := &mapstructure.DecoderConfig{
		DecodeHook:  mapstructure.TextUnmarshallerHookFunc(),
		ErrorUnused: true,
		TagName:     "koanf",
	}
	if err := l.k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		l.fail("", "", "decode: "+err.Error())
		return nil, joinScrubbed(l.errs, l.secrets)
	}
	cfg.File = path
	if errs := cfg.problems(); len(errs) > 0 {
		return nil, joinScrubbed(errs, append(l.secrets, cfg.secrets()...))
	}
	return cfg, nil
}

// resolveFile picks the file to read; explicit files must exist.
func resolveFile(opts LoadOptions, environ []string) (path string, explicit bool, err error) {
	switch {
	case opts.File != "":
		return expandHome(opts.File), true, nil
	case opts.Flags != nil && opts.Flags.Changed(ConfigFlag):
		v, _ := opts.Flags.GetString(ConfigFlag)
		return expandHome(v), true, nil
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, EnvConfig+"="); ok && v != "" {
			return expandHome(v), true, nil
		}
	}
	def := opts.DefaultFile
	if def == "" {
		def = DefaultPath()
	}
	if def == "" {
		return "", false, nil
	}
	if _, err := os.Stat(def); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("read %s: %v", def, unwrapPath(err))
	}
	return def, false, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loader accumulates layers into k and problems into errs.
type loader struct {
	k       *koanf.Koanf
	errs    []*Error
	secrets []string
}

func (l *loader) fail(key, source, msg string) {
	l.errs = append(l.errs, &Error{Key: key, Source: source, Msg: msg})
}

func (l *loader) loadFile(path string, explicit bool) {
	if _, err := os.Stat(path); err != nil {
		what := "read"
		if explicit && errors.Is(err, fs.ErrNotExist) {
			what = "config file"
		}
		l.fail("", path, fmt.Sprintf("%s %s: %v", what, path, unwrapPath(err)))
		return
	}
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), toml.Parser()); err != nil {
		var de *gotoml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			msg := strings.TrimPrefix(de.Error(), "toml: ")
			l.fail("", path, fmt.Sprintf("parse %s: line %d: %s (column %d)", path, row, msg, col))
			return
		}
		l.fail("", path, fmt.Sprintf("read %s: %v", path, unwrapPath(err)))
		return
	}
	l.apply(fk.All(), func(string) string { return path }, func(key string) string {
		return fmt.Sprintf("unknown key %q in %s", key, path)
	})
}

func (l *loader) loadEnv(environ []string) {
	ek := koanf.New(".")
	src := map[string]string{}
	var unknown []string
	err := ek.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if name == EnvConfig {
				return "", nil
			}
			f, ok := byEnv[name]
			if !ok {
				unknown = append(unknown, name)
				return "", nil
			}
			src[f.key] = "env " + name
			return f.key, value
		},
	}), nil)
	if err != nil {
		l.fail("", "", "read environment: "+err.Error())
		return
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		l.fail("", "env "+name, fmt.Sprintf("unknown environment variable %s: no configuration key maps to it", name))
	}
	l.apply(ek.All(), func(key string) string { return src[key] }, nil)
}

func (l *loader) loadFlags(fset *pflag.FlagSet, aliases map[string]string) {
	fk := koanf.New(".")
	src := map[string]string{}
	err := fk.Load(posflag.ProviderWithFlag(fset, ".", nil, func(f *pflag.Flag) (string, any) {
		key := ""
		if k, ok := aliases[f.Name]; ok {
			if _, known := byKey[k]; !known {
				l.fail("", "flag --"+f.Name, fmt.Sprintf("flag --%s maps to unknown key %q", f.Name, k))
				return "", nil
			}
			key = k
		} else if _, known := byKey[f.Name]; known {
			key = f.Name
		}
		if key == "" {
			return "", nil
		}
		if f.Changed {
			src[key] = "flag --" + f.Name
		}
		if f.Value.Type() == "stringToString" {
			return key, posflag.FlagVal(fset, f)
		}
		return key, f.Value.String()
	}), nil)
	if err != nil {
		l.fail("", "", "read flags: "+err.Error())
		return
	}
	l.apply(fk.All(), func(key string) string { return src[key] }, nil)
}

// apply coerces one layer's flattened values to their key types and merges
// the good ones over what is loaded so far. A map key (tracing.headers) is
// replaced as a whole, never merged entry by entry with a lower layer.
func (l *loader) apply(flat map[string]any, source func(key string) string, unknown func(key string) string) {
	layer := map[string]any{}
	tables := map[string]map[string]any{}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, fk := range keys {
		raw := flat[fk]
		if f, ok := byKey[fk]; ok {
			l.coerceInto(layer, f, raw, source(fk))
			continue
		}
		if f := mapFieldFor(fk); f != nil {
			if tables[f.key] == nil {
				tables[f.key] = map[string]any{}
			}
			tables[f.key][fk[len(f.key)+1:]] = raw
			continue
		}
		if unknown != nil {
			l.fail(fk, source(fk), unknown(fk))
		} else {
			l.fail(fk, source(fk), fmt.Sprintf("unknown key %q", fk))
		}
	}
	for key, tbl := range tables {
		l.coerceInto(layer, byKey[key], tbl, source(key))
	}
	if len(layer) == 0 {
		return
	}
	if err := l.k.Load(confmap.Provider(layer, "."), nil); err != nil {
		l.fail("", "", "merge: "+err.Error())
	}
}

func (l *loader) coerceInto(layer map[string]any, f *field, raw any, source string) {
	if s, ok := raw.(string); ok && s != "" {
		switch f.secret {
		case notSecret:
		case secretUserinfo:
			l.secrets = append(l.secrets, userinfoSecrets(s)...)
		default:
			l.secrets = append(l.secrets, s)
		}
	}
	v, problem := f.coerce(raw)
	if problem != "" {
		l.fail(f.key, source, fmt.Sprintf("%s: %s (from %s)", f.key, problem, source))
		return
	}
	if m, ok := v.(map[string]string); ok && f.secret == secretValues {
		for _, s := range m {
			if s != "" {
				l.secrets = append(l.secrets, s)
			}
		}
	}
	layer[f.key] = v
}

// mapFieldFor returns the map-typed field that flat key k is an entry of.
func mapFieldFor(k string) *field {
	for _, f := range fields {
		if f.typ.Kind() == reflect.Map && strings.HasPrefix(k, f.key+".") {
			return f
		}
	}
	return nil
}

// flatten returns every key of c with its typed value.
func flatten(c *Config) map[string]any {
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		out[f.key] = f.get(c).Interface()
	}
	return out
}

// secrets returns the secret values held by c.
func (c *Config) secrets() []string {
	var out []string
	for _, f := range fields {
		v := f.get(c)
		switch {
		case f.typ == stringMap && f.secret == secretValues:
			for _, s := range v.Interface().(map[string]string) {
				if s != "" {
					out = append(out, s)
				}
			}
		case f.typ.Kind() == reflect.String && f.isSecret(v.String()):
			out = append(out, v.String())
		case f.secret == secretUserinfo:
			out = append(out, userinfoSecrets(v.String())...)
		}
	}
	return out
}

// joinScrubbed removes every known secret from the messages and joins them.
// Longer secrets are replaced first so that a secret containing another is
// hidden whole.
func joinScrubbed(errs []*Error, secrets []string) error {
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	out := make([]error, len(errs))
	for i, e := range errs {
		for _, s := range secrets {
			if s != "" {
				e.Msg = strings.ReplaceAll(e.Msg, s, RedactedValue)
			}
		}
		out[i] = e
	}
	return errors.Join(out...)
}

// RegisterFlags adds --config and one flag per key, named like the key
// (--tier0.cluster_max_bytes, --tier2.retry.jitter), with the default as its
// default value. Flags already defined in fset are left alone. Load applies
// only the flags the user changed.
func RegisterFlags(fset *pflag.FlagSet) {
	if fset.Lookup(ConfigFlag) == nil {
		fset.String(ConfigFlag, "", "configuration file (default ~/.config/bop-aof/config.toml, or $"+EnvConfig+")")
	}
	_ = RegisterKeyFlags(fset, Keys()...)
}

// RegisterKeyFlags adds a flag for each of the named keys, skipping flags
// already defined. An unknown key is an error and nothing is added for it.
func RegisterKeyFlags(fset *pflag.FlagSet, keys ...string) error {
	def := Default()
	var errs []error
	for _, key := range keys {
		f, ok := byKey[key]
		if !ok {
			errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf("unknown key %q", key)})
			continue
		}
		if fset.Lookup(key) != nil {
			continue
		}
		usage := "sets " + key + " (env " + f.env + ")"
		dv := f.get(def).Interface()
		switch v := dv.(type) {
		case Bytes:
			b := v
			fset.Var(&b, key, usage)
		case Duration:
			d := v
			fset.Var(&d, key, usage)
		case map[string]string:
			fset.StringToString(key, v, usage)
		case string:
			if f.isSecret(v) {
				v = ""
			}
			fset.String(key, v, usage)
		case int:
			fset.Int(key, v, usage)
		case bool:
			fset.Bool(key, v, usage)
		case float64:
			fset.Float64(key, v, usage)
		default:
			errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf("no flag type for %s (%T)", key, dv)})
		}
	}
	return errors.Join(errs...)
}
