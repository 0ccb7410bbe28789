package rest

import "github.com/sluicehq/sluice/worker/api"

// Kafka Connect never answers null where a list or map belongs; clients iterate over these
// fields without checking. The functions below turn the worker's nil slices and maps into
// empty ones on copies, leaving the worker's values untouched.

// orEmpty returns s, or an empty slice when s is nil.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// orEmptyMap returns m, or an empty map when m is nil.
func orEmptyMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

func normalizeWorkerInfo(wi *api.WorkerInfo) *api.WorkerInfo {
	if wi == nil {
		return nil
	}
	c := *wi
	c.Connectors = orEmpty(c.Connectors)
	c.Tasks = orEmpty(c.Tasks)
	return &c
}

func normalizeInfo(info api.ConnectorInfo) api.ConnectorInfo {
	info.Config = orEmptyMap(info.Config)
	info.Tasks = orEmpty(info.Tasks)
	return info
}

func normalizeStatus(st api.ConnectorStatus) api.ConnectorStatus {
	st.Tasks = orEmpty(st.Tasks)
	return st
}

func normalizeTaskInfos(tasks []api.TaskInfo) []api.TaskInfo {
	out := make([]api.TaskInfo, len(tasks))
	for i, t := range tasks {
		t.Config = orEmptyMap(t.Config)
		out[i] = t
	}
	return out
}

func normalizeOffsets(o api.ConnectorOffsets) api.ConnectorOffsets {
	out := make([]api.ConnectorOffset, len(o.Offsets))
	for i, e := range o.Offsets {
		e.Partition = orEmptyMap(e.Partition)
		out[i] = e // a nil offset stays null: that is how a reset partition reads
	}
	return api.ConnectorOffsets{Offsets: out}
}

func normalizeConfigKey(k api.ConfigKeyInfo) api.ConfigKeyInfo {
	k.Dependents = orEmpty(k.Dependents)
	return k
}

func normalizeConfigKeys(keys []api.ConfigKeyInfo) []api.ConfigKeyInfo {
	out := make([]api.ConfigKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = normalizeConfigKey(k)
	}
	return out
}

func normalizeConfigInfos(ci api.ConfigInfos) api.ConfigInfos {
	ci.Groups = orEmpty(ci.Groups)
	configs := make([]api.ConfigInfo, len(ci.Configs))
	for i, c := range ci.Configs {
		c.Definition = normalizeConfigKey(c.Definition)
		c.Value.RecommendedValues = orEmpty(c.Value.RecommendedValues)
		c.Value.Errors = orEmpty(c.Value.Errors)
		configs[i] = c
	}
	ci.Configs = configs
	return ci
}
