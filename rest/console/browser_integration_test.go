package console_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// The console in a real browser (Debian's Chromium, headless, driven by chromedp) against real
// workers running real connectors on the test Kafka.

// EnvChromium names the Chromium scripts/testenv installs.
const EnvChromium = "SLUICE_TEST_CHROMIUM"

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv(EnvChromium)
	if path == "" {
		t.Skipf("browser test skipped: %s is not set (run `make test`, or `scripts/testenv up` and source .testenv/env)", EnvChromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// run runs browser steps, failing the test with the step's description and the page's text.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	value(t, ctx, what, chromedp.Steps(steps...))
}

// value runs a browser action that returns a value, failing the test as run does.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(step, a)
	if err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
	return v
}

// waitTrue waits until the script evaluates to true in the page.
func waitTrue(t *testing.T, ctx context.Context, what, script string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !value(t, ctx, what, chromedp.Evaluate[bool](script)) {
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: not within 45 s\npage:\n%s", what, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// click clicks the element, again if the page redrew it between finding and clicking it (the
// console refreshes its pages every 2 s).
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		for range 3 {
			if _, err = chromedp.Click(chromedp.CSS(sel))(ctx, tg); err == nil || !strings.Contains(err.Error(), "Could not find node") {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
		return err
	})
}

// screenshot saves the page: into docs/console when SLUICE_UPDATE_SCREENSHOTS is set (make
// screenshots), else into the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.TempDir()
	if os.Getenv("SLUICE_UPDATE_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "..", "docs", "console")
	}
	run(t, ctx, "settling before the screenshot "+name, chromedp.Sleep(300*time.Millisecond))
	png := value(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot()) // the window, as a user sees it
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleInABrowser(t *testing.T) {
	ctx := browser(t)
	c := sluicetest.NewCluster(t)
	// Two workers: the page is served by w, and some tasks run on the other.
	w, other := c.StartWorker(nil), c.StartWorker(nil)
	topic := sluicetest.UniqueName("console")
	sluicetest.CreateConnector(t, w.URL, "sensors-gen", map[string]string{"connector.class": "datagen", "kafka.topic": topic, "rate": "20", "tasks.max": "2"})
	// A sink whose file is a directory: its task fails on start, with a trace.
	sluicetest.CreateConnector(t, w.URL, "broken-sink", map[string]string{"connector.class": "file", "topics": topic, "file": t.TempDir()})
	sluicetest.WaitState(t, w.URL, "sensors-gen", api.StateRunning, 2)
	sluicetest.Eventually(t, time.Minute, "the broken sink's task to fail", func() (bool, string) {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", w.URL+"/connectors/broken-sink/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})

	t.Run("the connectors with their states", func(t *testing.T) {
		run(t, ctx, "the list", chromedp.Navigate(w.URL+"/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-connector="sensors-gen"] .state-running`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-connector="broken-sink"] .tasks .state-failed`)),
			chromedp.Sleep(4500*time.Millisecond)) // two refreshes: records per second to show
		screenshot(t, ctx, "connectors")
	})

	t.Run("the cluster, and the rates of tasks on another worker", func(t *testing.T) {
		self, peer := strings.TrimPrefix(w.URL, "http://"), strings.TrimPrefix(other.URL, "http://")
		run(t, ctx, "the cluster page", chromedp.Navigate(w.URL+"/ui/#/cluster"),
			chromedp.WaitVisible(chromedp.CSS(`#workers tr[data-worker="`+self+`"] small.self`)),
			chromedp.WaitVisible(chromedp.CSS(`#workers tr[data-worker="`+peer+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#workers .leader`)),
			chromedp.WaitVisible(chromedp.CSS(`#rebalance .state-running`)))
		for _, id := range []string{self, peer} {
			tasks := value(t, ctx, id+"'s tasks", chromedp.Text(chromedp.CSS(`#workers tr[data-worker="`+id+`"] td.tasks`)))
			if !strings.Contains(tasks, "sensors-gen-") {
				t.Errorf("the cluster page shows %s running %q; each worker runs a task of sensors-gen", id, tasks)
			}
		}
		screenshot(t, ctx, "cluster")

		// The task on the other worker has a rate: its metrics come through this worker.
		st := sluicetest.WaitState(t, w.URL, "sensors-gen", api.StateRunning, 2)
		remote := -1
		for _, ts := range st.Tasks {
			if ts.WorkerID == peer {
				remote = ts.ID
			}
		}
		if remote < 0 {
			t.Fatalf("no task of sensors-gen on %s: %+v", peer, st)
		}
		run(t, ctx, "the connector's page", chromedp.Navigate(w.URL+"/ui/#/c/sensors-gen"))
		rate := fmt.Sprintf(`#tasks tr[data-task="%d"] td.task-rate`, remote)
		waitTrue(t, ctx, "a records-per-second figure for the task on the other worker",
			`(() => { const el = document.querySelector('`+rate+`'); return !!el && /^[0-9.]+k?\/s$/.test(el.textContent) && el.textContent !== "0.0/s"; })()`)
	})

	t.Run("a failed task's trace", func(t *testing.T) {
		run(t, ctx, "the broken sink's page", chromedp.Navigate(w.URL+"/ui/#/c/broken-sink"),
			chromedp.WaitVisible(chromedp.CSS(`#tasks pre.trace`)))
		trace := value(t, ctx, "the trace", chromedp.Text(chromedp.CSS(`#tasks pre.trace`)))
		if !strings.Contains(trace, "is a directory") {
			t.Errorf("trace shown: %q", trace)
		}
		screenshot(t, ctx, "failed-task")
	})

	t.Run("pause from the page", func(t *testing.T) {
		run(t, ctx, "the running connector's page", chromedp.Navigate(w.URL+"/ui/#/c/sensors-gen"),
			chromedp.WaitVisible(chromedp.CSS(`#state .state-running`)),
			click(`button[data-action="pause"]`))
		// The API's answer, as the page reports it, then the state the page shows.
		run(t, ctx, "the page's report of the pause", chromedp.WaitVisible(chromedp.CSS(`#toast.show`)))
		if msg := value(t, ctx, "the report", chromedp.Text(chromedp.CSS(`#toast`))); msg != "Pause: done" {
			t.Fatalf("the page reported %q for the pause", msg)
		}
		run(t, ctx, "PAUSED on the page", chromedp.WaitVisible(chromedp.CSS(`#state .state-paused`)))
		sluicetest.WaitState(t, w.URL, "sensors-gen", api.StatePaused, 2)
	})

	t.Run("create through the form, a bad value shows its error", func(t *testing.T) {
		run(t, ctx, "the form", chromedp.Navigate(w.URL+"/ui/#/new"),
			chromedp.WaitReady(chromedp.CSS(`#plugin option[value="datagen"]`)), // options have no box to be visible
			chromedp.SendKeys(chromedp.CSS(`#connector-name`), "made-in-the-console"),
			chromedp.SetValue(chromedp.CSS(`#plugin`), "datagen"),
			chromedp.Steps(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				_, err := chromedp.Evaluate[bool](`document.getElementById("plugin").dispatchEvent(new Event("change"))`)(ctx, tg)
				return chromedp.Void{}, err
			}),
			chromedp.WaitVisible(chromedp.CSS(`input[data-key="kafka.topic"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[data-key="kafka.topic"]`), topic+"-ui"),
			chromedp.SendKeys(chromedp.CSS(`input[data-key="rate"]`), "fast"),
			chromedp.WaitVisible(chromedp.CSS(`.field-error[data-field="rate"]`)))
		fieldErr := value(t, ctx, "the error under rate", chromedp.Text(chromedp.CSS(`.field-error[data-field="rate"]`)))
		if !strings.Contains(fieldErr, "fast") {
			t.Errorf("the error under rate: %q", fieldErr)
		}
		screenshot(t, ctx, "form-error")
		run(t, ctx, "fixing and creating",
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Evaluate[string](`document.querySelector('input[data-key="rate"]').value = ""`)(ctx, tg)
				return err
			}),
			chromedp.SendKeys(chromedp.CSS(`input[data-key="rate"]`), "5"),
			chromedp.WaitNotVisible(chromedp.CSS(`.field-error[data-field="rate"]`)),
			click(`#save`),
			chromedp.WaitVisible(chromedp.CSS(`#state .state`)))
		var cfg map[string]string
		if code := sluicetest.Call(t, "GET", w.URL+"/connectors/made-in-the-console/config", nil, &cfg); code != 200 || cfg["rate"] != "5" || cfg["kafka.topic"] != topic+"-ui" {
			t.Errorf("the connector made in the console: %d %v", code, cfg)
		}
	})

	t.Run("with authentication, a reader sees no actions", func(t *testing.T) {
		users := filepath.Join(t.TempDir(), "users")
		var lines []string
		for _, u := range []string{"ops", "viewer"} {
			hash, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(hash))
		}
		if err := os.WriteFile(users, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		secured := c.StartProcess(map[string]string{"rest.auth.users.file": users, "rest.auth.admin.users": "ops", "rest.auth.read.users": "viewer"})

		// Without credentials the page answers 401 with a Basic challenge: a browser asks for
		// a user and password (headless Chromium, which cannot ask, fails the load so).
		step, cancel := context.WithTimeout(ctx, 45*time.Second)
		resp, err := chromedp.Run(step, chromedp.NavigateResponse(secured.URL+"/ui/"))
		cancel()
		switch {
		case err != nil && strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS"):
		case err == nil && resp.Status == 401 && strings.Contains(fmt.Sprint(resp.Headers), "Basic"):
		default:
			t.Errorf("the page without credentials: %v, %+v; want the browser challenged for credentials", err, resp)
		}
		direct, err := http.Get(secured.URL + "/ui/")
		if err != nil {
			t.Fatal(err)
		}
		direct.Body.Close()
		if direct.StatusCode != 401 || !strings.Contains(strings.Join(direct.Header.Values("WWW-Authenticate"), ","), "Basic") {
			t.Errorf("GET /ui/ without credentials: %d %v, want 401 with a Basic challenge", direct.StatusCode, direct.Header)
		}
		setHeaders := func(h network.Headers) chromedp.Action[chromedp.Void] {
			return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
				return err
			})
		}

		for _, tc := range []struct {
			user    string
			actions bool // the pause or resume button is displayed
		}{{"viewer", false}, {"ops", true}} {
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(tc.user+":"+tc.user+"-pw"))
			run(t, ctx, tc.user+" on a connector's page",
				setHeaders(network.Headers{"Authorization": auth}),
				chromedp.Navigate("about:blank"), // a new page, not a move within the last one
				chromedp.Navigate(secured.URL+"/ui/#/c/sensors-gen"),
				chromedp.WaitReady(chromedp.CSS(`#state .state`)))
			display := value(t, ctx, "the pause button's display", chromedp.Evaluate[string](
				`getComputedStyle(document.querySelector('button[data-action="pause"], button[data-action="resume"]')).display`))
			if (display != "none") != tc.actions {
				t.Errorf("%s sees the pause/resume button with display %q; want it shown: %v", tc.user, display, tc.actions)
			}
			if tc.user == "viewer" {
				screenshot(t, ctx, "read-only")
			}
		}
		run(t, ctx, "forgetting the credentials", setHeaders(network.Headers{}))
	})
}
