package icebergsink

// Coordinated commits: one snapshot per table and commit interval from all tasks together.
//
// Every task writes its buffered records as Parquet data files on the commit interval. Task 0,
// the coordinator, appends them to the table; the other tasks publish theirs to it through the
// table itself: a table property sluice.pending.<connector>.<id> holds one publication, the
// data files (with their statistics and partition values) and, per Kafka partition, the offset
// range [from, to) the files bring the table to. A publication is a metadata-only commit (no
// snapshot) that asserts the main branch head it was validated against, so it cannot slip in
// around a snapshot that moved the offsets. On its interval the coordinator reads the
// publications and commits, in one transaction that asserts the branch head: every
// publication that continues the table's offsets, its own files, the merged offsets in the
// snapshot summary, and the removal of the publications it took or found stale. Data files,
// offsets and the hand-off are all in the catalog's atomic commit, so a crash at any moment
// loses nothing and commits nothing twice; data files of a publication found stale are never
// referenced (orphans, as after any failed Iceberg write).
//
// The rule that keeps every record exactly once is the chain: starting from the offsets in
// the latest snapshot, a publication is next when each of its ranges starts exactly where its
// partition is; taking it moves the partitions to the ends of its ranges. A task only
// publishes ranges that start at the end of the current chain (it resumes there after a
// rebalance or a crash), so the chain only ever grows; a publication that starts below the
// chain (a zombie's, or one that raced another for the same partition) is stale and removed,
// and its task, finding its next range does not start at the chain's end, drops its buffer and
// reads again from there.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// pendingKey is the prefix of the table properties holding the connector's publications.
func pendingKey(connector string) string { return "sluice.pending." + connector + "." }

// publication is what a task hands the coordinator through a table property.
type publication struct {
	Task   int                 `json:"task"`
	Ranges map[string][2]int64 `json:"ranges"` // "topic/partition" -> [from, to)
	Files  []fileJSON          `json:"files"`
}

func newPublicationKey(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// publications reads the connector's publications from the table's properties.
func publications(tbl *table.Table, prefix string) (map[string]*publication, error) {
	out := map[string]*publication{}
	for k, v := range tbl.Properties() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		var p publication
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, fmt.Errorf("table property %s: %w", k, err)
		}
		out[k] = &p
	}
	return out, nil
}

// chain orders the publications that continue the table's offsets (stored): next, in commit
// order, and the offsets after them (cursor, which includes stored). Stale publications start
// below the chain somewhere and can never be committed; the rest wait for a missing
// predecessor (which the protocol never leaves, but a hand-edited table might). A partition
// with no stored offset starts at the lowest "from" any publication has for it.
func chain(stored map[string]int64, pubs map[string]*publication) (next []string, cursor map[string]int64, stale []string) {
	cursor = make(map[string]int64, len(stored))
	for k, v := range stored {
		cursor[k] = v
	}
	keys := make([]string, 0, len(pubs))
	for k := range pubs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for tp, r := range pubs[k].Ranges {
			if _, ok := stored[tp]; ok {
				continue
			}
			if c, ok := cursor[tp]; !ok || r[0] < c {
				cursor[tp] = r[0]
			}
		}
	}
	taken := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for _, k := range keys {
			if taken[k] {
				continue
			}
			fits := true
			for tp, r := range pubs[k].Ranges {
				if cursor[tp] != r[0] {
					fits = false
					break
				}
			}
			if !fits {
				continue
			}
			taken[k], progress = true, true
			next = append(next, k)
			for tp, r := range pubs[k].Ranges {
				cursor[tp] = r[1]
			}
		}
	}
	for _, k := range keys {
		if taken[k] {
			continue
		}
		for tp, r := range pubs[k].Ranges {
			if r[0] < cursor[tp] {
				stale = append(stale, k)
				break
			}
		}
	}
	return next, cursor, stale
}

// fileJSON is an iceberg.DataFile as a publication carries it.
type fileJSON struct {
	Path      string            `json:"path"`
	Spec      int32             `json:"spec"`
	Partition map[int]partValue `json:"partition,omitempty"`
	Count     int64             `json:"count"`
	Size      int64             `json:"size"`
	ColSizes  map[int]int64     `json:"column_sizes,omitempty"`
	Values    map[int]int64     `json:"value_counts,omitempty"`
	Nulls     map[int]int64     `json:"null_counts,omitempty"`
	NaNs      map[int]int64     `json:"nan_counts,omitempty"`
	Lower     map[int][]byte    `json:"lower,omitempty"`
	Upper     map[int][]byte    `json:"upper,omitempty"`
	Splits    []int64           `json:"splits,omitempty"`
	SortOrder *int              `json:"sort_order,omitempty"`
}

// partValue is a partition value with its Go type, so that it decodes to the same type.
type partValue struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v,omitempty"`
}

func encodeFile(df iceberg.DataFile) (fileJSON, error) {
	if df.ContentType() != iceberg.EntryContentData || df.FileFormat() != iceberg.ParquetFile {
		return fileJSON{}, fmt.Errorf("data file %s: not a Parquet data file", df.FilePath())
	}
	f := fileJSON{Path: df.FilePath(), Spec: df.SpecID(), Count: df.Count(), Size: df.FileSizeBytes(),
		ColSizes: df.ColumnSizes(), Values: df.ValueCounts(), Nulls: df.NullValueCounts(), NaNs: df.NaNValueCounts(),
		Lower: df.LowerBoundValues(), Upper: df.UpperBoundValues(), Splits: df.SplitOffsets(), SortOrder: df.SortOrderID()}
	if p := df.Partition(); len(p) > 0 {
		f.Partition = make(map[int]partValue, len(p))
		for id, v := range p {
			var t string
			switch v.(type) {
			case nil:
				t = "null"
			case bool:
				t = "bool"
			case int32:
				t = "int32"
			case int64:
				t = "int64"
			case float32:
				t = "float32"
			case float64:
				t = "float64"
			case string:
				t = "string"
			case []byte:
				t = "bytes"
			case iceberg.Date:
				t = "date"
			case iceberg.Time:
				t = "time"
			case iceberg.Timestamp:
				t = "timestamp"
			default:
				return fileJSON{}, fmt.Errorf("data file %s: partition value of type %T cannot be handed to the coordinator", df.FilePath(), v)
			}
			raw, err := json.Marshal(v)
			if err != nil {
				return fileJSON{}, err
			}
			f.Partition[id] = partValue{T: t, V: raw}
		}
	}
	return f, nil
}

func decodePartValue(p partValue) (any, error) {
	var err error
	switch p.T {
	case "null":
		return nil, nil
	case "bool":
		var v bool
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "int32":
		var v int32
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "int64":
		var v int64
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "float32":
		var v float32
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "float64":
		var v float64
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "string":
		var v string
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "bytes":
		var v []byte
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "date":
		var v iceberg.Date
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "time":
		var v iceberg.Time
		err = json.Unmarshal(p.V, &v)
		return v, err
	case "timestamp":
		var v iceberg.Timestamp
		err = json.Unmarshal(p.V, &v)
		return v, err
	}
	return nil, fmt.Errorf("unknown partition value type %q", p.T)
}

// decodeFile rebuilds a published data file against the table's metadata.
func decodeFile(meta table.Metadata, f fileJSON) (iceberg.DataFile, error) {
	spec := meta.PartitionSpecByID(int(f.Spec))
	if spec == nil {
		return nil, fmt.Errorf("data file %s: the table has no partition spec %d", f.Path, f.Spec)
	}
	part := map[int]any{}
	logical := map[int]string{}
	for _, pf := range spec.Fields() {
		pv, ok := f.Partition[pf.FieldID]
		if !ok {
			continue
		}
		v, err := decodePartValue(pv)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", f.Path, err)
		}
		part[pf.FieldID] = v
		if src, ok := meta.CurrentSchema().FindFieldByID(pf.SourceID()); ok {
			// As iceberg-go's writer marks them, so manifests encode the values alike.
			switch pf.Transform.ResultType(src.Type).(type) {
			case iceberg.DateType:
				logical[pf.FieldID] = "date"
			case iceberg.TimeType:
				logical[pf.FieldID] = "time-micros"
			case iceberg.TimestampType, iceberg.TimestampTzType:
				logical[pf.FieldID] = "timestamp-micros"
			case iceberg.DecimalType:
				logical[pf.FieldID] = "decimal"
			case iceberg.UUIDType:
				logical[pf.FieldID] = "uuid"
			}
		}
	}
	b, err := iceberg.NewDataFileBuilder(*spec, iceberg.EntryContentData, f.Path, iceberg.ParquetFile, part, logical, nil, f.Count, f.Size)
	if err != nil {
		return nil, err
	}
	b.ColumnSizes(f.ColSizes).ValueCounts(f.Values).NullValueCounts(f.Nulls).NaNValueCounts(f.NaNs).
		LowerBoundValues(f.Lower).UpperBoundValues(f.Upper)
	if len(f.Splits) > 0 {
		b.SplitOffsets(f.Splits)
	}
	if f.SortOrder != nil {
		b.SortOrderID(*f.SortOrder)
	}
	return b.Build(), nil
}
