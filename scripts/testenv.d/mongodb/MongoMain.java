// Launcher for the test MongoDB wire-protocol server (de.bwaldvogel:mongo-java-server, H2
// MVStore backend on a file, or in-memory). Started by scripts/testenv; not part of Sluice.
//
//   java -cp 'lib/*:classes' MongoMain [host] [port] [version] [data file]
//
// host defaults to 127.0.0.1, port to 27117, version to 5.0. With a data file the H2 MVStore
// backend keeps the data there, so a stop (SIGTERM, which commits and closes the store) and a
// start on the same file keep it; without one the in-memory backend starts empty. The version is what the server
// claims in hello/buildInfo, with the matching wire version (4.2=8, 4.4=9, 5.0=13, 6.0=17,
// 7.0=21, 8.0=25). mongo-java-server 1.47.0's own newest choice, ServerVersion.MONGO_5_0,
// reports wire version 8, which recent Go drivers (v2.10+: at least 9) refuse; the commands
// the server implements do not depend on the number.
// It prints a "listening on" line once bound, then blocks until SIGTERM/SIGINT.

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.AbstractMongoBackend;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

public final class MongoMain {
    private static final Map<String, Integer> WIRE_VERSIONS = Map.of(
            "4.0", 7, "4.2", 8, "4.4", 9, "5.0", 13, "6.0", 17, "7.0", 21, "8.0", 25);

    private record ClaimedVersion(List<Integer> versionArray, int wireVersion) implements MongoVersion {
        @Override public List<Integer> getVersionArray() { return versionArray; }
        @Override public int getWireVersion() { return wireVersion; }
    }

    public static void main(String[] args) throws Exception {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 27117;
        String version = args.length > 2 ? args[2] : "5.0";
        String dataFile = args.length > 3 && !args[3].isEmpty() ? args[3] : null;

        Integer wire = WIRE_VERSIONS.get(version);
        if (wire == null) {
            throw new IllegalArgumentException("unknown version " + version + ", use one of " + WIRE_VERSIONS.keySet());
        }
        String[] parts = version.split("\\.");
        MongoVersion claimed = new ClaimedVersion(
                List.of(Integer.parseInt(parts[0]), Integer.parseInt(parts[1]), 0), wire);
        AbstractMongoBackend backend = dataFile != null ? new H2Backend(dataFile) : new MemoryBackend();
        String backendName = dataFile != null ? "H2 MVStore backend on " + dataFile : "in-memory backend";
        MongoServer server = new MongoServer(backend.version(claimed));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("mongo-java-server: shutting down");
            server.shutdownNow();
            stopped.countDown();
        }, "shutdown"));

        server.bind(host, port);
        System.out.println("mongo-java-server: listening on " + host + ":" + port
                + " (claims MongoDB " + version + ", wire version " + wire + ", " + backendName + ")");
        System.out.flush();
        stopped.await();
    }
}
