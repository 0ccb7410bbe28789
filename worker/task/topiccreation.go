package task

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// topicCreator creates a source connector's topics before the first record goes to them, with
// Kafka Connect's topic.creation.* settings (KIP-158): the default group, and further groups
// in topic.creation.groups whose include/exclude regular expressions pick their topics.
type topicCreator struct {
	admin  *kafka.AdminClient // nil: creation is off
	groups []topicGroup
	mu     sync.Mutex
	seen   map[string]bool
}

type topicGroup struct {
	name             string
	include, exclude []*regexp.Regexp
	partitions       int
	replication      int
	configs          map[string]string
}

func newTopicCreator(admin *kafka.AdminClient, enabled bool, cfg map[string]string, groupNames []string) (*topicCreator, error) {
	tc := &topicCreator{seen: map[string]bool{}}
	rf := cfg["topic.creation.default.replication.factor"]
	if !enabled || rf == "" || rf == "0" || admin == nil {
		return tc, nil
	}
	tc.admin = admin
	for _, g := range append(groupNames, "default") {
		grp, err := parseTopicGroup(g, cfg)
		if err != nil {
			return nil, err
		}
		tc.groups = append(tc.groups, grp)
	}
	return tc, nil
}

func parseTopicGroup(name string, cfg map[string]string) (topicGroup, error) {
	prefix := "topic.creation." + name + "."
	g := topicGroup{name: name, partitions: -1, replication: -1, configs: map[string]string{}}
	def := func(key string) string {
		if v, ok := cfg[prefix+key]; ok {
			return v
		}
		return cfg["topic.creation.default."+key]
	}
	var err error
	if v := def("partitions"); v != "" {
		if g.partitions, err = strconv.Atoi(v); err != nil {
			return g, fmt.Errorf("%spartitions: %q is not a number", prefix, v)
		}
	}
	if v := def("replication.factor"); v != "" {
		if g.replication, err = strconv.Atoi(v); err != nil {
			return g, fmt.Errorf("%sreplication.factor: %q is not a number", prefix, v)
		}
	}
	for k, v := range cfg {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		switch rest {
		case "include", "exclude":
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				re, err := regexp.Compile("^(?:" + p + ")$")
				if err != nil {
					return g, fmt.Errorf("%s%s: %q is not a regular expression: %v", prefix, rest, p, err)
				}
				if rest == "include" {
					g.include = append(g.include, re)
				} else {
					g.exclude = append(g.exclude, re)
				}
			}
		case "partitions", "replication.factor":
		default:
			g.configs[rest] = v
		}
	}
	if name == "default" {
		g.include = []*regexp.Regexp{regexp.MustCompile(".*")}
	}
	return g, nil
}

func (g topicGroup) matches(topic string) bool {
	for _, re := range g.exclude {
		if re.MatchString(topic) {
			return false
		}
	}
	for _, re := range g.include {
		if re.MatchString(topic) {
			return true
		}
	}
	return false
}

// ensure creates topic with its group's settings the first time the task writes to it.
func (tc *topicCreator) ensure(ctx context.Context, topic string) error {
	if tc.admin == nil {
		return nil
	}
	tc.mu.Lock()
	seen := tc.seen[topic]
	tc.mu.Unlock()
	if seen {
		return nil
	}
	for _, g := range tc.groups {
		if !g.matches(topic) {
			continue
		}
		if err := kafkaclient.EnsureTopic(ctx, tc.admin, kafkaclient.TopicSpec{Name: topic, Partitions: g.partitions, Replication: g.replication, Configs: g.configs}); err != nil {
			return err
		}
		break
	}
	tc.mu.Lock()
	tc.seen[topic] = true
	tc.mu.Unlock()
	return nil
}
