package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxStreamNameLen is the longest stream name, in bytes.
const MaxStreamNameLen = 64

// ErrInvalidName is wrapped by every error of ValidStreamName and
// ValidSubjectPrefix, so callers can test with errors.Is.
var ErrInvalidName = errors.New("invalid name")

type nameError struct{ msg string }

func (e *nameError) Error() string { return e.msg }
func (e *nameError) Unwrap() error { return ErrInvalidName }

// ValidStreamName checks the rule every stream name follows (DESIGN.md):
// 1-64 characters of [A-Za-z0-9_-]. The same rule keeps a name safe as a
// NATS subject token, a JetStream stream or consumer name, a directory
// name and an S3 key part. The error says what is wrong and where.
func ValidStreamName(s string) error {
	if s == "" {
		return &nameError{"stream name is empty"}
	}
	if len(s) > MaxStreamNameLen {
		return &nameError{fmt.Sprintf("stream name is %d characters long; at most %d are allowed", len(s), MaxStreamNameLen)}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isNameChar(r) {
			return &nameError{fmt.Sprintf("stream name %q has %q at byte %d; only A-Z, a-z, 0-9, _ and - are allowed", s, r, i)}
		}
		i += size
	}
	return nil
}

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// ValidSubjectPrefix checks a NATS subject prefix that a stream name is
// appended to: dot-separated non-empty tokens of printable characters
// without whitespace or wildcards ("*", ">").
func ValidSubjectPrefix(s string) error {
	if s == "" {
		return &nameError{"subject prefix is empty"}
	}
	for i, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return &nameError{fmt.Sprintf("subject prefix %q has a space or control character at byte %d", s, i)}
		}
	}
	for _, tok := range strings.Split(s, ".") {
		switch {
		case tok == "":
			return &nameError{fmt.Sprintf("subject prefix %q has an empty token (leading, trailing or double dot)", s)}
		case strings.ContainsAny(tok, "*>"):
			return &nameError{fmt.Sprintf("subject prefix %q contains a wildcard (* or >)", s)}
		}
	}
	return nil
}

// subjectsOverlap reports whether subjects under prefix a and under prefix b
// can coincide, so one JetStream stream would capture the other's messages.
func subjectsOverlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}
