package main

import (
	"fmt"
	"strings"
)

// subjectTemplate is where replay publishes a record: a subject with
// placeholders {{stream}} (the stream read) and {{subject}} (the subject
// the record was published on). The default, "{{subject}}", is the
// original subject.
type subjectTemplate struct {
	text  string
	parts []templatePart
}

type templatePart struct {
	literal     string
	placeholder string // "stream" or "subject"; "" for a literal
}

// DefaultSubjectTemplate republishes every record to its original subject.
const DefaultSubjectTemplate = "{{subject}}"

// parseSubjectTemplate parses text; an unknown placeholder or an unclosed
// "{{" is an error.
func parseSubjectTemplate(text string) (subjectTemplate, error) {
	t := subjectTemplate{text: text}
	rest := text
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, templatePart{literal: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{literal: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return subjectTemplate{}, fmt.Errorf("subject template %q: %q is not closed by }}", text, rest[i:])
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		if name != "stream" && name != "subject" {
			return subjectTemplate{}, fmt.Errorf("subject template %q: unknown placeholder {{%s}} (known: {{stream}}, {{subject}})", text, name)
		}
		t.parts = append(t.parts, templatePart{placeholder: name})
		rest = rest[i+j+2:]
	}
	if len(t.parts) == 0 {
		return subjectTemplate{}, fmt.Errorf("subject template is empty")
	}
	return t, nil
}

// usesSubject reports whether the template needs the record's subject.
func (t subjectTemplate) usesSubject() bool {
	for _, p := range t.parts {
		if p.placeholder == "subject" {
			return true
		}
	}
	return false
}

// render returns the subject for a record of stream published on subject,
// checked to be one a NATS client may publish to: no wildcard, no
// whitespace, no empty token.
func (t subjectTemplate) render(stream, subject string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.placeholder {
		case "stream":
			b.WriteString(stream)
		case "subject":
			b.WriteString(subject)
		default:
			b.WriteString(p.literal)
		}
	}
	out := b.String()
	if err := validPublishSubject(out); err != nil {
		return "", fmt.Errorf("subject template %q gives %q: %w", t.text, out, err)
	}
	return out, nil
}

func validPublishSubject(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("a subject has no whitespace")
	}
	for _, tok := range strings.Split(s, ".") {
		switch tok {
		case "":
			return fmt.Errorf("empty token")
		case "*", ">":
			return fmt.Errorf("wildcard %q: a publish needs a literal subject", tok)
		}
	}
	return nil
}

// underPrefix reports whether subject is prefix or below it.
func underPrefix(subject, prefix string) bool {
	return prefix != "" && (subject == prefix || strings.HasPrefix(subject, prefix+"."))
}
