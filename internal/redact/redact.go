// Package redact hides secret values in text: messages, traces and logs the worker shows.
package redact

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scrub replaces every secret value in s with the redaction marker: as it is, as Go and JSON
// quote it, and line by line for a secret of several lines (a whole file). A secret shorter
// than minScrubbed is replaced only where it stands alone (not inside a longer word), so that
// a password "ab" does not blank out every "ab" of a message.
func Scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		for _, form := range secretForms(sec) {
			if len(form) >= minScrubbed {
				s = strings.ReplaceAll(s, form, Hidden)
			} else {
				s = replaceWord(s, form, Hidden)
			}
		}
	}
	return s
}

// Hidden stands for a secret in a message.
const Hidden = "[hidden]"

// minScrubbed is the length from which a secret is scrubbed wherever it appears.
const minScrubbed = 4

// secretForms are the ways a secret may be written in a message, longest first.
func secretForms(sec string) []string {
	forms := []string{sec}
	if q := strconv.Quote(sec); len(q) > 2 {
		forms = append(forms, q[1:len(q)-1])
	}
	if j, err := json.Marshal(sec); err == nil && len(j) > 2 {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	if strings.ContainsAny(sec, "\n\r") {
		for _, line := range strings.FieldsFunc(sec, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if line = strings.TrimSpace(line); line != "" {
				forms = append(forms, line)
			}
		}
	}
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(forms)
}

// replaceWord replaces the occurrences of word in s that no letter or digit touches.
func replaceWord(s, word, with string) string {
	if word == "" {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, word)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(word)
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[end:])
		alone := (i == 0 || !isWordRune(before)) && (end == len(s) || !isWordRune(after))
		b.WriteString(s[:i])
		if alone {
			b.WriteString(with)
		} else {
			b.WriteString(word)
		}
		s = s[end:]
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
