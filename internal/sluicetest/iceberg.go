package sluicetest

import (
	"context"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
)

// CreateFramesTable makes the simulator's raw frames table in namespace before an iceberg-sink
// starts. The sink would derive it from the first record's JSON, where a reading that happens
// to be whole (21.0 is written 21) would make its column a long and every later 21.5 a bad
// record; a table defined up front, with doubles for the readings, is the robust way.
func CreateFramesTable(t testing.TB, cat catalog.Catalog, namespace, table string) {
	t.Helper()
	ctx := context.Background()
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier(namespace), nil); err != nil {
		t.Fatal(err)
	}
	var fields []iceberg.NestedField
	add := func(name string, typ iceberg.Type) {
		fields = append(fields, iceberg.NestedField{ID: len(fields) + 1, Name: name, Type: typ})
	}
	add("frame_id", iceberg.PrimitiveTypes.String)
	add("device_id", iceberg.PrimitiveTypes.String)
	add("place_id", iceberg.PrimitiveTypes.String)
	add("ts", iceberg.PrimitiveTypes.TimestampTz)
	add("sent_at_ms", iceberg.PrimitiveTypes.Int64)
	for _, f := range []string{"temperature", "humidity", "pressure", "luminosity", "battery"} {
		add(f, iceberg.PrimitiveTypes.Float64)
	}
	if _, err := cat.CreateTable(ctx, catalog.ToIdentifier(namespace, table), iceberg.NewSchema(0, fields...)); err != nil {
		t.Fatal(err)
	}
}
