package convert

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

func bigInt(n int64) *big.Int { return big.NewInt(n) }

// iotFrame is a typical raw sensor frame, about 200 bytes.
const iotFrame = `{"device_id":"sensor-0042","place_id":"greenhouse-3","ts":1718035200123,` +
	`"temperature":21.37,"humidity":48.2,"pressure":1013.25,"luminosity":312,` +
	`"battery":3.71,"rssi":-67,"seq":123456,"ok":true,"fw":"1.4.2"}`

var frameSchema = &connect.Schema{Type: connect.Struct, Name: "iot.Frame", Fields: []connect.Field{
	{Name: "device_id", Schema: &connect.Schema{Type: connect.String}},
	{Name: "place_id", Schema: &connect.Schema{Type: connect.String}},
	{Name: "ts", Schema: &connect.Schema{Type: connect.Int64, Name: TimestampName, Version: 1}},
	{Name: "temperature", Schema: &connect.Schema{Type: connect.Float64}},
	{Name: "humidity", Schema: &connect.Schema{Type: connect.Float64, Optional: true}},
	{Name: "pressure", Schema: &connect.Schema{Type: connect.Float64, Optional: true}},
	{Name: "luminosity", Schema: &connect.Schema{Type: connect.Int32, Optional: true}},
	{Name: "battery", Schema: &connect.Schema{Type: connect.Float32, Optional: true}},
	{Name: "rssi", Schema: &connect.Schema{Type: connect.Int16, Optional: true}},
	{Name: "seq", Schema: &connect.Schema{Type: connect.Int64}},
	{Name: "ok", Schema: &connect.Schema{Type: connect.Boolean}},
	{Name: "fw", Schema: &connect.Schema{Type: connect.String, Optional: true}},
}}

func frameValue(b *testing.B) any {
	v, err := decodeJSON([]byte(iotFrame))
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func BenchmarkJSONFromKafka(b *testing.B) {
	c := mustNew(b, "json", map[string]string{"schemas.enable": "false"})
	data := []byte(iotFrame)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.FromKafka("iot.raw", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibUnmarshal(b *testing.B) {
	data := []byte(iotFrame)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONToKafka(b *testing.B) {
	c := mustNew(b, "json", map[string]string{"schemas.enable": "false"})
	v := frameValue(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ToKafka("iot.raw", v, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibMarshal(b *testing.B) {
	v := frameValue(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

func envelopedFrame(b *testing.B, c Converter) []byte {
	v, _, err := mustNew(b, "json", nil).FromKafka("t", []byte(`{"schema":null,"payload":`+iotFrame+`}`))
	if err != nil {
		b.Fatal(err)
	}
	v.(map[string]any)["battery"] = float64(float32(3.71))
	data, err := c.ToKafka("iot.raw", v, frameSchema)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkJSONFromKafkaEnvelope(b *testing.B) {
	c := mustNew(b, "json", nil)
	data := envelopedFrame(b, c)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.FromKafka("iot.raw", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibUnmarshalEnvelope(b *testing.B) {
	data := envelopedFrame(b, mustNew(b, "json", nil))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONToKafkaEnvelope(b *testing.B) {
	c := mustNew(b, "json", nil)
	v, _, err := c.FromKafka("t", envelopedFrame(b, c))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ToKafka("iot.raw", v, frameSchema); err != nil {
			b.Fatal(err)
		}
	}
}
