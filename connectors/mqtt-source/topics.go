package mqttsource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkFilter checks an MQTT topic filter's syntax: not empty, valid UTF-8 without NUL, +
// alone in its level, # alone in the last level. A filter may not itself be a shared
// subscription: mqtt.shared.subscription decides that.
func checkFilter(f string) error {
	switch {
	case f == "":
		return errors.New("it is empty")
	case !utf8.ValidString(f) || strings.ContainsRune(f, 0):
		return errors.New("it is not valid UTF-8 text")
	case len(f) > 65535:
		return errors.New("it is longer than 65535 bytes")
	case strings.HasPrefix(f, "$share/"):
		return errors.New("give the filter without $share/group/: mqtt.shared.subscription and mqtt.shared.group make shared subscriptions")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New("# must be a whole level and the last one, as in sensors/#")
		}
		if strings.Contains(l, "+") && l != "+" {
			return errors.New("+ must be a whole level, as in sensors/+/reading")
		}
	}
	return nil
}

// match reports whether an MQTT topic matches a filter and returns what the filter's
// wildcards matched: one entry per +, and for # the remaining levels joined with "/". As MQTT
// says, wildcards at the start of a filter do not match topics that begin with $.
func match(filter, topic string) ([]string, bool) {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return nil, false
	}
	var groups []string
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return append(groups, topic), true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		switch {
		case fl == "+":
			groups = append(groups, tl)
		case fl != tl:
			return nil, false
		}
		if !fmore || !tmore {
			if fmore && frest == "#" { // sensors/# matches sensors
				return append(groups, ""), true
			}
			return groups, fmore == tmore
		}
		filter, topic = frest, trest
	}
}

// mapping is one rule from an MQTT topic filter to a Kafka topic template.
type mapping struct {
	filter string
	// parts of the template: literal text, and the 1-based wildcard index to insert after it
	literal []string
	index   []int
}

// parseMappings reads the filter=topic rules. The Kafka topic is the text after the last =,
// since a Kafka topic cannot contain one.
func parseMappings(rules []string) ([]mapping, error) {
	var out []mapping
	for _, r := range rules {
		i := strings.LastIndexByte(r, '=')
		if i < 0 {
			return nil, fmt.Errorf("Invalid mapping %q: write it as filter=topic, like sensors/+/temperature=iot.temperature.{1}", r)
		}
		filter, tmpl := strings.TrimSpace(r[:i]), strings.TrimSpace(r[i+1:])
		if err := checkFilter(filter); err != nil {
			return nil, fmt.Errorf("Invalid mapping %q: topic filter %q: %v", r, filter, err)
		}
		wildcards := strings.Count(filter, "+") + strings.Count(filter, "#")
		m := mapping{filter: filter}
		rest := tmpl
		for {
			open := strings.IndexByte(rest, '{')
			if open < 0 {
				m.literal = append(m.literal, rest)
				break
			}
			end := strings.IndexByte(rest[open:], '}')
			if end < 0 {
				return nil, fmt.Errorf("Invalid mapping %q: %q has a { without its }", r, tmpl)
			}
			n, err := strconv.Atoi(rest[open+1 : open+end])
			if err != nil || n < 1 || n > wildcards {
				return nil, fmt.Errorf("Invalid mapping %q: %s does not name one of the filter's %d wildcards ({1} is the first)", r, rest[open:open+end+1], wildcards)
			}
			m.literal = append(m.literal, rest[:open])
			m.index = append(m.index, n)
			rest = rest[open+end+1:]
		}
		// The literal text must be a valid topic on its own; what wildcards insert is cleaned.
		if lit := strings.Join(m.literal, ""); strings.Trim(lit, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return nil, fmt.Errorf("Invalid mapping %q: a Kafka topic may hold only letters, digits, '.', '_' and '-'", r)
		}
		if len(m.index) == 0 {
			if err := checkKafkaTopic(tmpl); err != nil {
				return nil, fmt.Errorf("Invalid mapping %q: %v", r, err)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// topicFor returns the Kafka topic of the first rule whose filter matches the MQTT topic.
func topicFor(rules []mapping, mqttTopic string) (string, bool, error) {
	for _, m := range rules {
		groups, ok := match(m.filter, mqttTopic)
		if !ok {
			continue
		}
		if len(m.index) == 0 {
			return m.literal[0], true, nil
		}
		var b strings.Builder
		for i, lit := range m.literal {
			b.WriteString(lit)
			if i < len(m.index) {
				b.WriteString(cleanTopicPart(groups[m.index[i]-1]))
			}
		}
		topic := b.String()
		if err := checkKafkaTopic(topic); err != nil {
			return "", true, fmt.Errorf("mapping %s=... turns MQTT topic %q into Kafka topic %q: %v", m.filter, mqttTopic, topic, err)
		}
		return topic, true, nil
	}
	return "", false, nil
}

// cleanTopicPart makes what a wildcard matched fit in a Kafka topic name: levels of # joined
// with dots, other characters outside [a-zA-Z0-9._-] replaced by _.
func cleanTopicPart(s string) string {
	b := []byte(s)
	clean := true
	for _, c := range b {
		if !kafkaTopicByte(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var out strings.Builder
	for _, r := range s {
		switch {
		case r == '/':
			out.WriteByte('.')
		case r < utf8.RuneSelf && kafkaTopicByte(byte(r)):
			out.WriteRune(r)
		default:
			out.WriteByte('_')
		}
	}
	return out.String()
}

func kafkaTopicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// checkKafkaTopic applies Kafka's rules for topic names.
func checkKafkaTopic(t string) error {
	switch {
	case t == "":
		return errors.New("the Kafka topic is empty")
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid Kafka topic", t)
	case len(t) > 249:
		return errors.New("the Kafka topic is longer than 249 characters")
	}
	for i := 0; i < len(t); i++ {
		if !kafkaTopicByte(t[i]) {
			return fmt.Errorf("%q is not a valid Kafka topic: only letters, digits, '.', '_' and '-' are allowed", t)
		}
	}
	return nil
}
