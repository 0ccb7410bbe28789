// Sluice's web console: a small page over the worker's public REST API (Kafka Connect's
// paths). No framework and no build step; everything shown is set as text, never as HTML.
"use strict";

const view = document.getElementById("view");
let readOnly = false;
let refreshTimer = null;

// h makes an element: h("td", {class: "x"}, "text", child, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// api calls the REST API with the browser's credentials for the worker; it notes the role the
// answers say and throws the API's error message on a failure.
async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const role = resp.headers.get("X-Sluice-Role");
  if (role) setRole(role);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const msg = data && data.message ? data.message : `${resp.status} ${resp.statusText}`;
    const err = new Error(msg);
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

function setRole(role) {
  readOnly = role === "read";
  document.body.classList.toggle("read-only", readOnly);
  document.getElementById("who").textContent = readOnly ? "read only" : "";
}

function toast(msg, bad) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = bad ? "bad show" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 4000);
}

const enc = encodeURIComponent;

function stateBadge(state) {
  return h("span", { class: "state state-" + String(state || "UNKNOWN").toLowerCase() }, state || "UNKNOWN");
}

// ---- throughput: every worker's /metrics (through the worker serving the page), sampled at
// every refresh

const history = new Map(); // connector, or connector + "/" + task -> samples {t, in, out, lag, dlq}, the last 3 minutes
const sampleCap = 90;

function parseMetrics(texts) {
  const sums = new Map();
  const add = (key, field, v) => {
    if (!sums.has(key)) sums.set(key, { in: 0, out: 0, lag: 0, dlq: 0 });
    sums.get(key)[field] += v;
  };
  const fields = {
    sluice_source_records_written_total: "in", sluice_sink_records_read_total: "in",
    sluice_sink_records_put_total: "out", sluice_sink_records_lag: "lag", sluice_dead_letter_records_total: "dlq",
  };
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const m = line.match(/^([a-z_]+)\{([^}]*)\} ([0-9.eE+-]+)$/);
      if (!m || !fields[m[1]]) continue;
      const conn = m[2].match(/connector="((?:[^"\\]|\\.)*)"/);
      if (!conn) continue;
      add(conn[1], fields[m[1]], Number(m[3]));
      const task = m[2].match(/task="([0-9]+)"/);
      if (task) add(conn[1] + "/" + task[1], fields[m[1]], Number(m[3]));
    }
  }
  for (const v of sums.values()) if (v.out === 0) v.out = v.in; // a source writes what it reads
  return sums;
}

// workerMetricsPath is where a worker's metrics are read: this worker's own, or another's
// through this one (GET /cluster/workers/{id}/metrics), so the page needs one address only.
function workerMetricsPath(w) {
  return w.self ? "/metrics" : `/cluster/workers/${enc(w.worker_id).replace(/%3A/gi, ":")}/metrics`;
}

async function sampleMetrics() {
  let texts;
  try {
    const cluster = await api("GET", "/cluster");
    texts = await Promise.all(cluster.workers.map((w) => fetch(workerMetricsPath(w), { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : "")).catch(() => "")));
  } catch { return; }
  const now = Date.now();
  for (const [key, v] of parseMetrics(texts)) {
    const list = history.get(key) || [];
    list.push({ t: now, ...v });
    if (list.length > sampleCap) list.shift();
    history.set(key, list);
  }
}

// rates are the records per second between successive samples.
function rates(conn, key) {
  const list = history.get(conn) || [];
  const out = [];
  for (let i = 1; i < list.length; i++) {
    const dt = (list[i].t - list[i - 1].t) / 1000;
    if (dt > 0) out.push(Math.max(0, (list[i][key] - list[i - 1][key]) / dt));
  }
  return out;
}

function sparkline(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 200 40");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length > 1) {
    const max = Math.max(...values, 1);
    const pts = values.map((v, i) => `${(i / (values.length - 1)) * 200},${38 - (v / max) * 36}`).join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts);
    svg.append(line);
  }
  return svg;
}

function fmtRate(v) { return v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(1)}k/s` : `${v.toFixed(v < 10 ? 1 : 0)}/s`; }

function throughput(conn) {
  const inR = rates(conn, "in"), outR = rates(conn, "out");
  const last = (history.get(conn) || []).at(-1);
  return h("div", { class: "throughput", id: "throughput" },
    h("div", {}, h("small", {}, "records in"), h("strong", { id: "rate-in" }, fmtRate(inR.at(-1))), sparkline(inR, "records in per second")),
    h("div", {}, h("small", {}, "records out"), h("strong", { id: "rate-out" }, fmtRate(outR.at(-1))), sparkline(outR, "records out per second")),
    h("div", {}, h("small", {}, "sink lag"), h("strong", {}, last ? String(last.lag) : "–")),
    h("div", {}, h("small", {}, "dead letters"), h("strong", {}, last ? String(last.dlq) : "–")),
    h("p", { class: "hint" }, "Every task, on whichever worker it runs; the last three minutes."));
}

// ---- routes

const routes = [
  [/^#?\/?$/, listConnectors, true],
  [/^#\/c\/(.+)$/, connectorDetail, true],
  [/^#\/new$/, () => connectorForm(null), false],
  [/^#\/edit\/(.+)$/, (n) => connectorForm(n), false],
  [/^#\/plugins$/, listPlugins, false],
  [/^#\/cluster$/, clusterView, true],
];

// update puts a new drawing of the page in place, keeping the parts that did not change (so
// a button being clicked is not swapped for its twin under the pointer).
function update(node) {
  const old = view.firstElementChild;
  if (!old || view.childElementCount !== 1 || old.tagName !== node.tagName || old.childNodes.length !== node.childNodes.length) {
    view.replaceChildren(node);
    return;
  }
  const olds = [...old.childNodes];
  [...node.childNodes].forEach((n, i) => {
    const o = olds[i];
    const same = o.nodeType === n.nodeType && (n.nodeType === Node.ELEMENT_NODE ? o.outerHTML === n.outerHTML : o.textContent === n.textContent);
    if (!same) o.replaceWith(n);
  });
}

let renderGen = 0; // a draw of a page the user has left must not replace the new one

async function render() {
  clearInterval(refreshTimer);
  const gen = ++renderGen;
  const hash = location.hash || "#/";
  for (const [re, fn, live] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    const arg = m[1] !== undefined ? decodeURIComponent(m[1]) : undefined;
    const draw = async () => {
      try {
        const node = await fn(arg);
        if (node && gen === renderGen) update(node);
      } catch (e) {
        if (gen === renderGen) view.replaceChildren(h("p", { class: "error" }, e.message));
      }
    };
    await draw();
    if (live) refreshTimer = setInterval(draw, 2000);
    return;
  }
  view.replaceChildren(h("p", {}, "No such page."));
}

// ---- connectors

async function listConnectors() {
  const [all] = await Promise.all([api("GET", "/connectors?expand=status&expand=info"), sampleMetrics()]);
  const names = Object.keys(all || {}).sort();
  const rows = names.map((name) => {
    const st = all[name].status || {};
    const info = all[name].info || {};
    const tasks = st.tasks || [];
    const running = tasks.filter((t) => t.state === "RUNNING").length;
    const workers = [...new Set(tasks.map((t) => t.worker_id).filter(Boolean))];
    return h("tr", { "data-connector": name },
      h("td", {}, h("a", { href: "#/c/" + enc(name) }, name)),
      h("td", {}, info.type || st.type || ""),
      h("td", { class: "class" }, (info.config || {})["connector.class"] || ""),
      h("td", { class: "state-cell" }, stateBadge(st.connector && st.connector.state)),
      h("td", { class: "tasks" }, `${running}/${tasks.length} running`, tasks.filter((t) => t.state === "FAILED").length ? h("span", { class: "state state-failed" }, "failed") : null),
      h("td", {}, workers.join(", ")),
      h("td", { class: "rate" }, fmtRate(rates(name, "in").at(-1))));
  });
  return h("section", {},
    h("h1", {}, "Connectors"),
    names.length === 0 ? h("p", {}, "No connectors yet.", readOnly ? "" : " ", readOnly ? "" : h("a", { href: "#/new" }, "Create one.")) :
      h("table", { id: "connectors" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Type"), h("th", {}, "Class"), h("th", {}, "State"), h("th", {}, "Tasks"), h("th", {}, "Workers"), h("th", {}, "Records in"))),
        h("tbody", {}, rows)));
}

async function connectorDetail(name) {
  const path = "/connectors/" + enc(name);
  const [st, info] = await Promise.all([api("GET", path + "/status"), api("GET", path), sampleMetrics()]);
  const state = st.connector.state;
  const act = (label, action, method, url, confirmText) => h("button", {
    class: "admin-only" + (action === "delete" || action === "reset-offsets" ? " danger" : ""), "data-action": action,
    onclick: async () => {
      if (confirmText && !confirm(confirmText)) return;
      try {
        await api(method, url);
        toast(`${label}: done`);
        if (action === "delete") { location.hash = "#/"; return; }
        render();
      } catch (e) { toast(`${label}: ${e.message}`, true); }
    },
  }, label);
  const actions = h("div", { class: "actions" },
    state === "PAUSED" || state === "STOPPED" ? act("Resume", "resume", "PUT", path + "/resume") : act("Pause", "pause", "PUT", path + "/pause"),
    state !== "STOPPED" ? act("Stop", "stop", "PUT", path + "/stop") : null,
    act("Restart", "restart", "POST", path + "/restart?includeTasks=true&onlyFailed=false"),
    act("Restart failed tasks", "restart-failed", "POST", path + "/restart?includeTasks=true&onlyFailed=true"),
    h("a", { class: "button admin-only", href: "#/edit/" + enc(name), "data-action": "edit" }, "Edit"),
    act("Delete", "delete", "DELETE", path, `Delete connector ${name}? Its configuration goes; its topics and offsets stay.`));
  const tasks = (st.tasks || []).map((t) => h("tr", { "data-task": t.id },
    h("td", {}, t.id), h("td", {}, stateBadge(t.state)), h("td", {}, t.worker_id || ""),
    h("td", { class: "task-rate" }, fmtRate(rates(name + "/" + t.id, "in").at(-1))),
    h("td", {}, t.restarts ? String(t.restarts) : ""),
    h("td", {}, t.trace ? h("pre", { class: "trace" }, t.trace) : ""),
    h("td", {}, h("button", {
      class: "admin-only small", "data-action": "restart-task",
      onclick: async () => {
        try { await api("POST", `${path}/tasks/${t.id}/restart`); toast(`task ${t.id} restarted`); render(); } catch (e) { toast(e.message, true); }
      },
    }, "Restart"))));
  const offsets = h("div", { id: "offsets" });
  const showOffsets = h("button", {
    "data-action": "show-offsets", onclick: async () => {
      try {
        const o = await api("GET", path + "/offsets");
        const text = h("textarea", { rows: 8, id: "offsets-json", readonly: state !== "STOPPED" || readOnly }, JSON.stringify(o, null, 2));
        offsets.replaceChildren(text,
          state === "STOPPED" ? h("div", { class: "actions" },
            h("button", {
              class: "admin-only", "data-action": "alter-offsets", onclick: async () => {
                try { await api("PATCH", path + "/offsets", JSON.parse(text.value)); toast("offsets altered"); } catch (e) { toast(e.message, true); }
              },
            }, "Alter offsets"),
            act("Reset offsets", "reset-offsets", "DELETE", path + "/offsets", `Reset every offset of ${name}? It starts from the beginning.`)) :
            h("p", { class: "hint" }, "Stop the connector to alter or reset its offsets."));
        clearInterval(refreshTimer); // keep the editor still
      } catch (e) { toast(e.message, true); }
    },
  }, "Offsets");
  return h("section", {},
    h("h1", {}, name, " ", h("span", { id: "state" }, stateBadge(state))),
    h("p", { class: "meta" }, `${info.type} · ${info.config["connector.class"]} · on ${st.connector.worker_id || "?"}`),
    st.connector.trace ? h("pre", { class: "trace" }, st.connector.trace) : null,
    actions,
    throughput(name),
    h("h2", {}, "Tasks"),
    h("table", { id: "tasks" }, h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "State"), h("th", {}, "Worker"), h("th", {}, "Records in"), h("th", {}, "Restarts"), h("th", {}, "Trace"), h("th", {}, ""))), h("tbody", {}, tasks)),
    h("h2", {}, "Configuration"),
    h("pre", { class: "config" }, JSON.stringify(info.config, null, 2)),
    h("h2", {}, "Offsets"), showOffsets, offsets);
}

// ---- the form: made from the plugin's config declaration, validated as the user types

// runtimeGroups are the groups of the settings every connector has (Kafka Connect's).
const runtimeGroups = ["Common", "Transforms", "Predicates", "Error Handling", "Topic Creation", "Exactly Once", "Restarts"];

async function connectorForm(editName) {
  clearInterval(refreshTimer);
  let current = {};
  let plugin = "";
  if (editName) {
    current = await api("GET", "/connectors/" + enc(editName) + "/config");
    plugin = current["connector.class"];
  }
  const plugins = (await api("GET", "/connector-plugins")) || [];
  const nameInput = h("input", { id: "connector-name", value: editName || "", disabled: !!editName, placeholder: "my-connector", required: true });
  const select = h("select", { id: "plugin", disabled: !!editName },
    h("option", { value: "" }, "Choose a plugin…"),
    plugins.map((p) => h("option", { value: p.class, selected: p.class === plugin }, `${p.class} (${p.type})`)));
  const fields = h("div", { id: "fields" });
  const summary = h("p", { id: "summary" });
  const raw = h("textarea", { id: "raw", rows: 12, class: "hidden" });
  let defs = [];
  let timer = null;

  const values = () => {
    const out = { "connector.class": select.value };
    for (const input of fields.querySelectorAll("[data-key]")) {
      if (input.value !== "") out[input.dataset.key] = input.value;
    }
    return out;
  };
  const validate = async () => {
    if (!select.value) return;
    try {
      const res = await api("PUT", `/connector-plugins/${enc(select.value)}/config/validate`, { ...values(), name: nameInput.value || "unnamed" });
      for (const c of res.configs || []) {
        const span = fields.querySelector(`.field-error[data-field="${CSS.escape(c.value.name)}"]`);
        if (span) {
          span.textContent = (c.value.errors || []).join("; ");
          const folded = span.closest("details");
          if (folded && span.textContent) folded.open = true;
        }
      }
      summary.textContent = res.error_count ? `${res.error_count} setting(s) need attention` : "Valid";
      summary.className = res.error_count ? "bad" : "good";
    } catch (e) { summary.textContent = e.message; summary.className = "bad"; }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(validate, 300); };

  const drawFields = async () => {
    fields.replaceChildren();
    if (!select.value) return;
    defs = await api("GET", `/connector-plugins/${enc(select.value)}/config`);
    // The plugin's own settings first, then the runtime's Common ones; the runtime's other
    // groups (error handling, transforms, ...) folded until opened or until they hold an error.
    const groups = new Map();
    for (const d of defs) {
      if (d.name === "connector.class" || d.name === "name") continue;
      const g = d.group || "Settings";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(d);
    }
    const rank = (g) => (g === "Common" ? 1 : runtimeGroups.includes(g) ? 2 : 0);
    for (const [g, list] of [...groups].sort((a, b) => rank(a[0]) - rank(b[0]))) {
      const fs = rank(g) === 2 ? h("details", { class: "group" }, h("summary", {}, g)) : h("fieldset", {}, h("legend", {}, g));
      for (const d of list) {
        const id = "f-" + d.name.replace(/[^a-zA-Z0-9_-]/g, "_");
        let input;
        if (d.type === "BOOLEAN") {
          input = h("select", { id, "data-key": d.name },
            h("option", { value: "" }, d.default_value !== null ? `default (${d.default_value})` : "—"),
            h("option", { value: "true", selected: current[d.name] === "true" }, "true"),
            h("option", { value: "false", selected: current[d.name] === "false" }, "false"));
        } else {
          input = h("input", {
            id, "data-key": d.name, type: d.type === "PASSWORD" ? "password" : "text", autocomplete: "off",
            placeholder: d.default_value !== null && d.default_value !== undefined ? d.default_value : "",
            value: current[d.name] !== undefined ? current[d.name] : "",
          });
        }
        input.addEventListener("input", later);
        input.addEventListener("change", later);
        fs.append(h("div", { class: "field" + (d.required ? " required" : "") },
          h("label", { for: id }, d.display_name || d.name, d.display_name && d.display_name !== d.name ? h("code", {}, d.name) : null,
            h("small", {}, d.type + (d.required ? ", required" : ""))),
          input,
          h("span", { class: "field-error", "data-field": d.name }),
          h("small", { class: "doc" }, d.documentation || "")));
      }
      fields.append(fs);
    }
    validate();
  };
  select.addEventListener("change", () => { current = {}; drawFields(); });
  nameInput.addEventListener("input", later);

  const save = async (ev) => {
    ev.preventDefault();
    const name = editName || nameInput.value.trim();
    if (!name) { toast("The connector needs a name", true); return; }
    try {
      await api("PUT", `/connectors/${enc(name)}/config`, values());
      toast(`${name} saved`);
      location.hash = "#/c/" + enc(name);
    } catch (e) {
      toast(e.message, true);
      summary.textContent = e.message; summary.className = "bad";
    }
  };
  const rawToggle = h("button", {
    type: "button", "data-action": "raw", onclick: () => {
      if (raw.classList.toggle("hidden")) return;
      raw.value = JSON.stringify(values(), null, 2);
    },
  }, "Raw JSON");
  const rawApply = h("button", {
    type: "button", "data-action": "raw-apply", onclick: () => {
      try {
        current = JSON.parse(raw.value);
        if (!editName && current["connector.class"]) select.value = current["connector.class"];
        drawFields();
      } catch (e) { toast("Not JSON: " + e.message, true); }
    },
  }, "Apply JSON");
  const form = h("form", { id: "connector-form", onsubmit: save },
    h("h1", {}, editName ? `Edit ${editName}` : "New connector"),
    h("div", { class: "field" }, h("label", { for: "connector-name" }, "Name"), nameInput),
    h("div", { class: "field" }, h("label", { for: "plugin" }, "Plugin"), select),
    fields, summary,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "save", class: "primary" }, editName ? "Save" : "Create"), rawToggle, rawApply),
    raw);
  if (plugin) await drawFields();
  return form;
}

// ---- plugins and cluster

async function listPlugins() {
  const plugins = (await api("GET", "/connector-plugins?connectorsOnly=false")) || [];
  return h("section", {},
    h("h1", {}, "Plugins"),
    h("p", {}, "Metrics: ", h("a", { href: "/metrics" }, "/metrics"), " · API: ", h("a", { href: "/openapi.yaml" }, "/openapi.yaml")),
    plugins.map((p) => {
      const body = h("div", {});
      return h("details", {
        class: "plugin", "data-plugin": p.class, ontoggle: async (ev) => {
          if (!ev.target.open || body.childElementCount) return;
          const defs = await api("GET", `/connector-plugins/${enc(p.class)}/config`).catch(() => []);
          body.append(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Setting"), h("th", {}, "Type"), h("th", {}, "Default"), h("th", {}, "Documentation"))),
            h("tbody", {}, defs.map((d) => h("tr", {}, h("td", {}, h("code", {}, d.name)), h("td", {}, d.type), h("td", {}, d.default_value ?? ""), h("td", {}, d.documentation || ""))))));
        },
      }, h("summary", {}, `${p.class} `, h("small", {}, `${p.type}${p.version ? " · " + p.version : ""}`)), body);
    }));
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

const taskNames = (tasks) => tasks.map((t) => `${t.connector}-${t.task}`).join(", ");

async function clusterView() {
  const [root, cl] = await Promise.all([api("GET", "/"), api("GET", "/cluster")]);
  const workers = cl.workers.map((w) => h("tr", { "data-worker": w.worker_id },
    h("td", {}, w.worker_id, w.self ? h("small", { class: "self" }, " this page's worker") : null),
    h("td", {}, w.leader ? h("span", { class: "state state-running leader" }, "leader") : ""),
    h("td", {}, w.version),
    h("td", { title: w.started_at }, w.uptime_ms ? fmtDuration(w.uptime_ms) : "–"),
    h("td", {}, String(w.config_offset), w.catching_up ? h("span", { class: "state state-unassigned", title: w.catching_up }, "catching up") : null),
    h("td", { class: "connectors" }, w.connectors.join(", ")),
    h("td", { class: "tasks" }, `${w.tasks.length}: `, taskNames(w.tasks))));
  const held = cl.held;
  const unassigned = cl.unassigned;
  return h("section", {},
    h("h1", {}, "Cluster ", h("span", { id: "rebalance" }, cl.rebalancing ? h("span", { class: "state state-restarting" }, "rebalancing") : h("span", { class: "state state-running" }, "stable"))),
    h("p", { class: "meta" }, `Sluice ${root.version} · Kafka cluster ${root.kafka_cluster_id} · generation ${cl.generation} · ${cl.workers.length} worker(s) · leader ${cl.leader || "not known"}`),
    h("table", { id: "workers" },
      h("thead", {}, h("tr", {}, h("th", {}, "Worker"), h("th", {}, ""), h("th", {}, "Version"), h("th", {}, "Up"), h("th", {}, "Config offset"), h("th", {}, "Connectors"), h("th", {}, "Tasks"))),
      h("tbody", {}, workers)),
    held ? h("div", { id: "held", class: "notice" },
      h("strong", {}, "Waiting for a departed worker: "),
      [held.connectors.join(", "), taskNames(held.tasks)].filter(Boolean).join(", "),
      ` · since ${new Date(held.since).toLocaleTimeString()}, moves to the others at ${new Date(held.moves_at).toLocaleTimeString()} unless it comes back`) : null,
    unassigned.connectors.length + unassigned.tasks.length ? h("div", { id: "unassigned", class: "notice" },
      h("strong", {}, "Not running anywhere yet: "),
      [unassigned.connectors.join(", "), taskNames(unassigned.tasks)].filter(Boolean).join(", ")) : null,
    h("p", { class: "hint" }, "Every worker answers the same: the leader hands the picture to all of them with their assignments."));
}

window.addEventListener("hashchange", render);
render();
