// local-mcp-gateway dashboard: live updates (server-sent events), traffic filters, copy buttons, OAuth Connect.
// Served from this origin only (CSP script-src 'self'); it writes text with textContent, never as markup.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const MAX_ROWS = 300;
  const pendingConnect = new Set();

  function text(el, value) {
    if (el && el.textContent !== value) el.textContent = value;
  }

  function cell(tag, value, className) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (className) el.className = className;
    return el;
  }

  // -- live status ------------------------------------------------------------------------------------------

  function applyStatus(status) {
    if (String(status.generation) !== body.dataset.generation) {
      window.location.reload();
      return;
    }
    const slug = body.dataset.profile;
    if (page === "profile" && slug) {
      if (!status.profiles.includes(slug) || status.catalogs[slug] !== body.dataset.catalog) {
        window.location.reload();
        return;
      }
    }
    for (const row of document.querySelectorAll("tr[data-server-key]")) {
      const key = row.dataset.serverKey;
      const fields = status.servers[key];
      if (!fields) continue;
      for (const el of row.querySelectorAll("[data-field]")) {
        text(el, fields[el.dataset.field] || "");
      }
      const state = row.querySelector('[data-field="state"]');
      if (state) state.className = "state state-" + (fields.state || "none");
      const button = row.querySelector("button.connect");
      if (button) button.hidden = !fields.needs_auth;
      const result = row.querySelector("[data-connect-result]");
      if (result && pendingConnect.has(key)) {
        if (fields.state === "ready") {
          text(result, "Connected: " + fields.tools + " tools");
          result.className = "connect-result small ok";
          pendingConnect.delete(key);
        } else if (fields.state === "failed") {
          text(result, "Login failed: " + fields.error);
          result.className = "connect-result small error";
          pendingConnect.delete(key);
        }
      }
    }
    for (const el of document.querySelectorAll("[data-profile-extra]")) {
      const extra = (status.profile_extra || {})[el.dataset.profileExtra];
      if (extra !== undefined) text(el, extra);
    }
    const box = document.getElementById("reload-error");
    if (box) {
      if (status.reload_error) {
        box.hidden = false;
        const detail = document.getElementById("reload-error-text");
        if (detail && !detail.textContent.includes(status.reload_error)) text(detail, status.reload_error);
      } else {
        box.hidden = true;
      }
    }
  }

  // -- traffic ----------------------------------------------------------------------------------------------

  const trafficBody = document.getElementById("traffic-body");
  const statsBody = document.getElementById("stats-body");
  const filterServer = document.getElementById("filter-server");
  const filterTool = document.getElementById("filter-tool");
  const filterOutcome = document.getElementById("filter-outcome");
  let lastStats = [];

  function filters() {
    return {
      server: filterServer ? filterServer.value : "",
      tool: filterTool ? filterTool.value.trim().toLowerCase() : "",
      outcome: filterOutcome ? filterOutcome.value : "",
    };
  }

  function visible(row, f) {
    if (f.server && row.server !== f.server) return false;
    if (f.tool && !row.name.toLowerCase().includes(f.tool)) return false;
    if (f.outcome && row.outcome !== f.outcome) return false;
    return true;
  }

  function addServerOption(server) {
    if (!filterServer || !server) return;
    for (const option of filterServer.options) if (option.value === server) return;
    const option = document.createElement("option");
    option.value = server;
    option.textContent = server;
    filterServer.appendChild(option);
  }

  function addTraffic(rows) {
    if (!trafficBody) return;
    const f = filters();
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.server = row.server;
      tr.dataset.name = row.name;
      tr.dataset.outcome = row.outcome;
      tr.className = "outcome-" + row.outcome;
      tr.append(
        cell("td", row.at.replace("T", " ").replace("+00:00", "Z"), "small"),
        cell("td", row.profile),
        cell("td", row.method),
        cell("td", row.name),
        cell("td", row.server),
        cell("td", row.outcome + (row.error_code ? " " + row.error_code : "")),
        cell("td", String(row.duration_ms), "num"),
      );
      tr.hidden = !visible(row, f);
      trafficBody.prepend(tr);
      addServerOption(row.server);
    }
    while (trafficBody.rows.length > MAX_ROWS) trafficBody.deleteRow(trafficBody.rows.length - 1);
  }

  function renderStats() {
    if (!statsBody) return;
    const f = filters();
    statsBody.replaceChildren();
    for (const s of lastStats) {
      if (f.server && s.server !== f.server) continue;
      if (f.tool && !s.tool.toLowerCase().includes(f.tool)) continue;
      const tr = document.createElement("tr");
      tr.append(cell("td", s.profile), cell("td", s.tool), cell("td", s.server), cell("td", String(s.calls), "num"),
        cell("td", String(s.errors), "num"), cell("td", String(s.p50_ms), "num"), cell("td", String(s.p95_ms), "num"));
      statsBody.appendChild(tr);
    }
  }

  function refilter() {
    if (!trafficBody) return;
    const f = filters();
    for (const tr of trafficBody.rows) {
      tr.hidden = !visible({ server: tr.dataset.server, name: tr.dataset.name, outcome: tr.dataset.outcome }, f);
    }
    renderStats();
  }

  for (const el of [filterServer, filterTool, filterOutcome]) {
    if (el) {
      el.addEventListener("input", refilter);
      el.addEventListener("change", refilter);
    }
  }
  const filterForm = document.getElementById("traffic-filters");
  if (filterForm) filterForm.addEventListener("submit", (event) => event.preventDefault());

  // -- the event stream -------------------------------------------------------------------------------------

  const live = document.getElementById("live");
  if (page !== "sign-in" && window.EventSource) {
    const source = new EventSource("/ui/events");
    source.addEventListener("open", () => { text(live, "live"); live.className = "live on"; });
    source.addEventListener("error", () => { text(live, "reconnecting…"); live.className = "live off"; });
    source.addEventListener("status", (event) => applyStatus(JSON.parse(event.data)));
    source.addEventListener("traffic", (event) => {
      const data = JSON.parse(event.data);
      addTraffic(data.rows);
      lastStats = data.stats;
      renderStats();
    });
  } else if (live) {
    live.hidden = true;
  }

  // -- copy buttons -----------------------------------------------------------------------------------------

  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copyTarget);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        text(button, "Copied");
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        text(button, "Selected: press Ctrl+C");
      }
    });
  }

  // -- OAuth Connect ----------------------------------------------------------------------------------------

  for (const button of document.querySelectorAll("button.connect")) {
    button.addEventListener("click", async () => {
      const key = button.dataset.profile + "/" + button.dataset.server;
      const result = document.querySelector('[data-connect-result="' + CSS.escape(key) + '"]');
      // Open the window now, while the click still counts as the person's action; point it at the login next.
      const login = window.open("about:blank", "_blank");
      text(result, "Starting the login…");
      result.className = "connect-result small";
      button.disabled = true;
      try {
        const response = await fetch("/ui/oauth/connect", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ profile: button.dataset.profile, server: button.dataset.server }),
          credentials: "same-origin",
        });
        const answer = await response.json();
        if (answer.auth_url) {
          pendingConnect.add(key);
          if (login) login.location.href = answer.auth_url;
          else window.open(answer.auth_url, "_blank");
          text(result, "Log in in the new window; waiting for the server…");
        } else {
          if (login) login.close();
          text(result, answer.message || "no login is waiting");
          result.className = "connect-result small " + (response.ok ? "ok" : "error");
        }
      } catch (err) {
        if (login) login.close();
        text(result, "The gateway did not answer: " + err);
        result.className = "connect-result small error";
      } finally {
        button.disabled = false;
      }
    });
  }
})();
