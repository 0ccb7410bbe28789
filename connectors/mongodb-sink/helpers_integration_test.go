package mongodbsink_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// mongoDB returns a client of the test MongoDB and a fresh database name, dropped at the end.
func mongoDB(t testing.TB) (uri string, db *mongo.Database) {
	t.Helper()
	uri = connecttest.Env(t, connecttest.EnvMongoDB)
	return uri, sluicetest.MongoDatabase(t, uri, "it")
}

// count counts a collection's documents, or returns -1 when the server does not answer.
func count(_ testing.TB, coll *mongo.Collection) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		return -1
	}
	return n
}

// frames returns records from..to-1 keyed "dev-<i%devices>" with a JSON value {"device", "seq"}.
func frames(from, to, devices int) []*kafka.Message {
	var out []*kafka.Message
	for i := from; i < to; i++ {
		dev := fmt.Sprintf("dev-%d", i%devices)
		out = append(out, &kafka.Message{Key: []byte(dev), Value: fmt.Appendf(nil, `{"device":%q,"seq":%d,"temp":21.5}`, dev, i)})
	}
	return out
}

// checkSeqs checks that the collection holds exactly one document per seq in 0..n-1.
func checkSeqs(t testing.TB, coll *mongo.Collection, n int) {
	t.Helper()
	cur, err := coll.Find(t.Context(), bson.D{}, options.Find().SetProjection(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID  int64 `bson:"_id"`
		Seq int64 `bson:"seq"`
	}
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	seen := make([]int, n)
	for _, d := range docs {
		if d.ID != d.Seq || d.Seq < 0 || d.Seq >= int64(n) {
			t.Fatalf("unexpected document %+v", d)
		}
		seen[d.Seq]++
	}
	var missing, doubled []int
	for seq, k := range seen {
		switch {
		case k == 0:
			missing = append(missing, seq)
		case k > 1:
			doubled = append(doubled, seq)
		}
	}
	if len(missing) > 0 || len(doubled) > 0 || len(docs) != n {
		t.Fatalf("%d documents for %d seqs; missing %d (first %v), more than once %v", len(docs), n, len(missing), first(missing, 10), first(doubled, 10))
	}
}

func first(s []int, n int) []int { return s[:min(n, len(s))] }

// testenv runs scripts/testenv with the arguments.
func testenv(t testing.TB, args ...string) {
	t.Helper()
	script := connecttest.Env(t, connecttest.EnvTestenvScript)
	if out, err := exec.Command(script, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}
