// Package convert turns Kafka's bytes into connector values and back: Kafka Connect's JSON,
// string and byte-array converters.
//
// Values are what JSON decodes to, with integers as int64: nil, bool, int64, float64, string,
// []byte, map[string]any and []any. A number with a fraction or an exponent, and an integer
// too big for int64, decodes to float64. Data that carries a schema may also hold Kafka
// Connect's logical types: time.Time for Timestamp, Date and Time, and a decimal string such
// as "12.30" for Decimal.
//
// Build a converter with New from a connector's key.converter or value.converter class and
// the settings under that prefix:
//
//	c, err := convert.New("org.apache.kafka.connect.json.JsonConverter",
//		map[string]string{"schemas.enable": "false"}, false)
//	value, schema, err := c.FromKafka("iot.raw", msg.Value)
//
// Converters are safe for concurrent use. Schemas they return may be shared between records
// and must not be modified; copy one to change it.
package convert
