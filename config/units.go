package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size units. Binary units (KiB, MiB, ...) are powers of 1024, decimal units
// (KB, MB, ...) powers of 1000. Single letters (K, M, G) are rejected because
// operators disagree on what they mean.
const (
	KiB Bytes = 1 << 10
	MiB Bytes = 1 << 20
	GiB Bytes = 1 << 30
	TiB Bytes = 1 << 40
)

var byteUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"pb":  1e15,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"pib": 1 << 50,
}

// Bytes is a byte count that reads and writes human forms: "64MiB",
// "1.5GB", "512KiB", "4096" (a plain integer is bytes). Unit names are
// case-insensitive. It implements encoding.TextUnmarshaler (so koanf's
// decode hook and TOML strings use it) and pflag.Value (so it can be a flag).
type Bytes int64

// ParseBytes parses a human byte size. A fractional value is rounded down to
// a whole byte ("1.5KiB" is 1536). Negative values parse, so that validation
// can reject them with the key's name.
func ParseBytes(s string) (Bytes, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty byte size")
	}
	i := 0
	if in[0] == '-' || in[0] == '+' {
		i = 1
	}
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" || num == "-" || num == "+" {
		return 0, fmt.Errorf("byte size %q does not start with a number", s)
	}
	mult, ok := byteUnits[unit]
	if !ok {
		switch unit {
		case "k", "m", "g", "t", "p":
			u := strings.ToUpper(unit)
			return 0, fmt.Errorf("byte size %q: ambiguous unit %q, use %siB (binary) or %sB (decimal)", s, u, u, u)
		}
		return 0, fmt.Errorf("byte size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s, in[i:])
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("byte size %q: %w", s, errors.Unwrap(err))
		}
		if mult == 1 {
			return Bytes(n), nil
		}
		m := int64(mult)
		if n > math.MaxInt64/m || n < math.MinInt64/m {
			return 0, fmt.Errorf("byte size %q overflows int64", s)
		}
		return Bytes(n * m), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: invalid number %q", s, num)
	}
	v := math.Trunc(f * mult)
	if v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0, fmt.Errorf("byte size %q overflows int64", s)
	}
	return Bytes(v), nil
}

// String prints the size in the largest binary unit that divides it exactly
// ("64MiB", "2GiB"), else the largest exact decimal unit ("1500MB"), else a
// plain byte count. The output parses back with ParseBytes to the same value.
func (b Bytes) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range []struct {
		n    Bytes
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}, {1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"}} {
		if b%u.n == 0 {
			return strconv.FormatInt(int64(b/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Set implements pflag.Value.
func (b *Bytes) Set(s string) error { return b.UnmarshalText([]byte(s)) }

// Type implements pflag.Value; it is the word shown in --help.
func (b *Bytes) Type() string { return "bytes" }

// Duration is a time.Duration that reads Go duration strings ("250ms",
// "5m", "1h30m") plus a leading day count ("7d", "1d12h"). A plain integer
// is rejected: without a unit nobody knows whether 30 means seconds or
// nanoseconds. It implements encoding.TextUnmarshaler and pflag.Value.
type Duration time.Duration

// ParseDuration parses a Duration. Negative values parse so that
// validation can reject them with the key's name.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	if _, err := strconv.ParseFloat(in, 64); err == nil && in != "0" {
		return 0, fmt.Errorf("duration %q has no unit (use e.g. 250ms, 30s, 5m, 1h, 7d)", s)
	}
	neg := false
	rest := in
	if rest[0] == '-' || rest[0] == '+' {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	var days int64
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err == nil {
			if n > int64(math.MaxInt64/(24*time.Hour)) {
				return 0, fmt.Errorf("duration %q overflows", s)
			}
			days = n
			rest = rest[i+1:]
		}
	}
	var d time.Duration
	if rest != "" {
		var err error
		d, err = time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 250ms, 30s, 5m, 1h, 7d)", s)
		}
	}
	total := time.Duration(days)*24*time.Hour + d
	if total < 0 {
		return 0, fmt.Errorf("duration %q overflows", s)
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints the Go form without trailing zero units ("5m", "1h30m",
// "250ms"); the output parses back with ParseDuration.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Set implements pflag.Value.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Type implements pflag.Value; it is the word shown in --help.
func (d *Duration) Type() string { return "duration" }
