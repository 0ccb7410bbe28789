// Package transform holds Kafka Connect's single message transforms and predicates, and builds
// a connector's chain from its settings.
//
// A connector configures its chain as Kafka Connect does:
//
//	transforms=route,stamp
//	transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter
//	transforms.route.regex=iot\.(.*)
//	transforms.route.replacement=sensors.$1
//	transforms.route.predicate=isRaw
//	transforms.stamp.type=InsertField$Value
//	transforms.stamp.timestamp.field=ingested_at
//	predicates=isRaw
//	predicates.isRaw.type=TopicNameMatches
//	predicates.isRaw.pattern=iot\..*
//
// Types are Kafka Connect's class names (org.apache.kafka.connect.transforms.InsertField$Value)
// or their short forms (InsertField$Value, InsertField, in any case); a transform that works on
// the key or the value means the value when the $Key or $Value suffix is left out.
//
// Transforms work on schemaless records (the value a map[string]any) and on records with a
// schema (a map[string]any with a struct *connect.Schema), updating the schema. They never
// modify the record, maps or schemas they are given: a transform that changes something
// returns a new record with copies of what changed, and a schema it derives is made once per
// input schema and shared, so do not modify it either. Bad data is a *connect.DataError naming
// the field and the value. A nil key or value (a tombstone) passes through the transforms that
// work on fields.
//
// The transforms, with Kafka Connect's settings:
//
//   - Cast (spec "f1:int32,f2:string", or one type for the whole key or value; int8, int16,
//     int32, int64, float32, float64, boolean, string). Integers stay int64 and floats float64
//     in the value; the schema names the new type. Unlike Java, a number out of range is an
//     error rather than wrapped around, and only "true", "false", "1", "0" and the like cast
//     to boolean. Maps, lists and bytes cast to string as JSON and base64.
//   - DropHeaders (headers).
//   - ExtractField (field; field.syntax.version V2 reads a dotted path, `quoted` where a name
//     has dots).
//   - Filter: drops every record; give it a predicate.
//   - Flatten (delimiter, default "."): nested maps and structs; lists stay as they are.
//   - HeaderFrom (fields, headers, operation copy or move): a header's bytes are the field's
//     text: strings and bytes as they are, numbers and booleans as text, time as RFC 3339,
//     maps and lists as JSON.
//   - HoistField (field).
//   - InsertField (topic.field, partition.field, offset.field, timestamp.field, static.field,
//     static.value; a name ending in "!" is a required field, "?" optional). The timestamp is a
//     time.Time; a source record (one with a SourcePartition or SourceOffset) gets nil for
//     partition and offset.
//   - InsertHeader (header, value.literal).
//   - MaskField (fields, replacement): the type's empty value, or the replacement parsed to
//     the field's type.
//   - RegexRouter (regex, replacement): the regex is RE2 (no lookaround or backreferences)
//     and must match all of the topic; $1 and ${name} in the replacement as in Java.
//   - ReplaceField (exclude, include, renames "old:new"; also blacklist and whitelist).
//   - SetSchemaMetadata (schema.name, schema.version).
//   - TimestampConverter (field, target.type string, unix, Date, Time or Timestamp, format,
//     unix.precision): reads time.Time, Unix numbers (floats keep microseconds) and strings.
//     format is a java.text.SimpleDateFormat pattern, translated to a Go layout: the letters
//     y M d H h m s S a E z Z X and 'quoted text'; formatted and parsed in UTC.
//   - TimestampRouter (topic.format, default "${topic}-${timestamp}"; timestamp.format,
//     default "yyyyMMdd"): a record without a timestamp uses the current time.
//   - ValueToKey (fields).
//
// The predicates: TopicNameMatches (pattern, matching all of the topic), HasHeaderKey (name)
// and RecordIsTombstone.
package transform
