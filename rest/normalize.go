package rest

import "github.com/sluicehq/sluice/runtime"

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

func normalizeWorkerInfo(wi *runtime.WorkerInfo) *runtime.WorkerInfo {
	if wi == nil {
		return nil
	}
	c := *wi
	c.Connectors = orEmpty(c.Connectors)
	c.Tasks = orEmpty(c.Tasks)
	return &c
}

func normalizeInfo(info runtime.ConnectorInfo) runtime.ConnectorInfo {
	info.Config = orEmptyMap(info.Config)
	info.Tasks = orEmpty(info.Tasks)
	return info
}

func normalizeStatus(st runtime.ConnectorStatus) runtime.ConnectorStatus {
	st.Tasks = orEmpty(st.Tasks)
	return st
}

func normalizeTaskInfos(tasks []runtime.TaskInfo) []runtime.TaskInfo {
	out := make([]runtime.TaskInfo, len(tasks))
	for i, t := range tasks {
		t.Config = orEmptyMap(t.Config)
		out[i] = t
	}
	return out
}

func normalizeOffsets(o runtime.ConnectorOffsets) runtime.ConnectorOffsets {
	out := make([]runtime.ConnectorOffset, len(o.Offsets))
	for i, e := range o.Offsets {
		e.Partition = orEmptyMap(e.Partition)
		out[i] = e // a nil offset stays null: that is how a reset partition reads
	}
	return runtime.ConnectorOffsets{Offsets: out}
}

func normalizeConfigKey(k runtime.ConfigKeyInfo) runtime.ConfigKeyInfo {
	k.Dependents = orEmpty(k.Dependents)
	return k
}

func normalizeConfigKeys(keys []runtime.ConfigKeyInfo) []runtime.ConfigKeyInfo {
	out := make([]runtime.ConfigKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = normalizeConfigKey(k)
	}
	return out
}

func normalizeConfigInfos(ci runtime.ConfigInfos) runtime.ConfigInfos {
	ci.Groups = orEmpty(ci.Groups)
	configs := make([]runtime.ConfigInfo, len(ci.Configs))
	for i, c := range ci.Configs {
		c.Definition = normalizeConfigKey(c.Definition)
		c.Value.RecommendedValues = orEmpty(c.Value.RecommendedValues)
		c.Value.Errors = orEmpty(c.Value.Errors)
		configs[i] = c
	}
	ci.Configs = configs
	return ci
}
