// The Source Debugger page of `cmdai listen`: plain JavaScript, no build step.
// Every value of a message is data from outside: it only ever reaches the page as
// text (textContent, text nodes, attribute values), never as markup.
"use strict";

(function () {
  const FILTERS = ["q", "type", "event", "user", "flag", "violation", "from", "to"];
  const PAGE = 100;
  const TYPES = ["track", "identify", "page", "screen", "group", "alias"];
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- state and URL

  function readURL() {
    const params = new URLSearchParams(location.search);
    const state = {};
    for (const name of FILTERS) state[name] = params.get(name) || "";
    state.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
    state.view = params.get("view") === "schema" ? "schema" : "messages";
    state.seq = params.get("seq") || "";
    state.tab = params.get("tab") === "raw" ? "raw" : "pretty";
    return state;
  }

  const state = readURL();
  let live = true;
  let waiting = 0; // messages that arrived while paused
  let total = 0;
  let received = 0;
  let current = null; // the open message

  function writeURL() {
    const params = new URLSearchParams();
    for (const name of FILTERS) if (state[name]) params.set(name, state[name]);
    if (state.offset) params.set("offset", String(state.offset));
    if (state.view !== "messages") params.set("view", state.view);
    if (state.seq) params.set("seq", state.seq);
    if (state.tab !== "pretty") params.set("tab", state.tab);
    const text = params.toString();
    history.replaceState(null, "", text ? "?" + text : location.pathname);
  }

  function filterParams() {
    const params = new URLSearchParams();
    for (const name of FILTERS) if (state[name]) params.set(name, state[name]);
    return params;
  }

  function filtered() {
    return FILTERS.some((name) => state[name]);
  }

  // ---------------------------------------------------------------- building elements

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.json();
  }

  function throttle(fn, wait) {
    let timer = null;
    let again = false;
    return function run() {
      if (timer) {
        again = true;
        return;
      }
      fn();
      timer = setTimeout(() => {
        timer = null;
        if (again) {
          again = false;
          run();
        }
      }, wait);
    };
  }

  // ---------------------------------------------------------------- the list

  function timeOf(stamp) {
    return stamp.length >= 23 ? stamp.slice(11, 23) : stamp;
  }

  function rowFor(item) {
    const flags = item.flags.filter((f) => !f.startsWith("plan: "));
    const plan = item.flags.filter((f) => f.startsWith("plan: "));
    const row = el("tr", { "data-message-id": item.id, "data-seq": String(item.seq) }, [
      el("td", { text: timeOf(item.receivedAt), title: item.receivedAt }),
      el("td", { text: item.type }),
      el("td", { text: item.event, title: item.event }),
      el("td", { text: item.user, title: item.user }),
      el("td", {}, flags.map((f) => el("span", { class: "badge", text: f, title: f }))),
      el("td", {}, plan.map((f) => el("span", { class: "badge plan", text: f.slice(6), title: f }))),
    ]);
    if (String(item.seq) === state.seq) row.classList.add("open");
    row.tabIndex = 0;
    row.addEventListener("click", () => openMessage(String(item.seq)));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") openMessage(String(item.seq));
    });
    return row;
  }

  function showRows(rows) {
    const body = $("rows");
    const fragment = document.createDocumentFragment();
    for (const item of rows) fragment.append(rowFor(item));
    clear(body);
    body.append(fragment);
    $("empty").hidden = rows.length > 0;
    showPager(rows.length);
  }

  function showPager(count) {
    const first = count ? state.offset + 1 : 0;
    $("shown").textContent = `${first}–${state.offset + count} of ${total}`;
    $("newer").disabled = state.offset === 0;
    $("older").disabled = state.offset + PAGE >= total;
  }

  function showCounts() {
    const parts = [`${received} received`, `${total} shown`];
    if (!live && waiting) parts.push(`${waiting} new while paused`);
    $("counts").textContent = parts.join(" · ");
  }

  async function loadPage() {
    const params = filterParams();
    params.set("offset", String(state.offset));
    params.set("limit", String(PAGE));
    const page = await getJSON("/cmdai/page?" + params);
    total = page.total;
    received = page.received;
    showRows(page.rows);
    showCounts();
  }

  // Pushed rows go straight in when the list shows the newest of everything; otherwise
  // the page is asked again, at most a few times a second.
  const reload = throttle(() => loadPage().catch(report), 400);

  function takeBatch(batch) {
    received = batch.received;
    if (!live) {
      waiting += batch.new;
      showCounts();
      return;
    }
    if (filtered() || state.offset || batch.new > batch.rows.length) {
      // More arrived than the event carries (a burst), or the list is filtered: the
      // server pages it.
      reload();
    } else {
      total = Math.min(total + batch.new, batch.received);
      const body = $("rows");
      const fragment = document.createDocumentFragment();
      for (const item of batch.rows.slice(0, batch.new)) fragment.append(rowFor(item));
      body.prepend(fragment);
      while (body.rows.length > PAGE) body.deleteRow(body.rows.length - 1);
      $("empty").hidden = body.rows.length > 0;
      showPager(body.rows.length);
      showCounts();
    }
    refreshSide();
  }

  function connect() {
    const source = new EventSource("/cmdai/stream");
    source.addEventListener("batch", (event) => takeBatch(JSON.parse(event.data)));
    source.addEventListener("reset", () => {
      waiting = 0;
      if (live) loadPage().catch(report);
    });
    source.addEventListener("open", () => showCounts());
    source.addEventListener("error", () => {
      $("counts").textContent = "disconnected: retrying…";
    });
  }

  // ---------------------------------------------------------------- filters

  function setOptions(select, values, keep) {
    const have = new Set(Array.from(select.options).map((o) => o.value));
    for (const value of values) {
      if (!have.has(value)) select.append(el("option", { value: value, text: value }));
    }
    select.value = keep;
  }

  async function loadSummary() {
    const summary = await getJSON("/cmdai/summary");
    setOptions($("type"), Object.keys(summary.byType).concat(state.type ? [state.type] : []), state.type);
    const flags = Object.keys(summary.byFlag);
    setOptions($("flag"), flags.filter((f) => !f.startsWith("plan: ")).concat(state.flag && state.flag !== "any" ? [state.flag] : []), state.flag);
    setOptions($("violation"), flags.filter((f) => f.startsWith("plan: ")).concat(state.violation && state.violation !== "any" ? [state.violation] : []), state.violation);
    const names = $("event-names");
    clear(names);
    for (const name of Object.keys(summary.byEvent)) names.append(el("option", { value: name }));
  }

  function showFilters() {
    for (const name of ["q", "event", "user"]) $(name).value = state[name];
    for (const name of ["type", "flag", "violation"]) {
      const select = $(name);
      if (state[name] && !Array.from(select.options).some((o) => o.value === state[name])) {
        select.append(el("option", { value: state[name], text: state[name] }));
      }
      select.value = state[name];
    }
    const range = state.from || state.to;
    $("range").hidden = !range;
    $("range-text").textContent = range ? `${timeOf(state.from) || "…"} – ${timeOf(state.to) || "…"}` : "";
  }

  function changed() {
    state.offset = 0;
    writeURL();
    showFilters();
    loadPage().catch(report);
    loadTimeline().catch(report);
  }

  function wireFilters() {
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    let typing = null;
    for (const name of ["q", "event", "user"]) {
      $(name).addEventListener("input", () => {
        clearTimeout(typing);
        typing = setTimeout(() => {
          state[name] = $(name).value.trim();
          changed();
        }, 250);
      });
    }
    for (const name of ["type", "flag", "violation"]) {
      $(name).addEventListener("change", () => {
        state[name] = $(name).value;
        changed();
      });
    }
    $("clear").addEventListener("click", () => {
      for (const name of FILTERS) state[name] = "";
      changed();
    });
    $("range-clear").addEventListener("click", () => {
      state.from = state.to = "";
      changed();
    });
    $("newer").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE);
      writeURL();
      loadPage().catch(report);
    });
    $("older").addEventListener("click", () => {
      state.offset += PAGE;
      writeURL();
      loadPage().catch(report);
    });
    $("live").addEventListener("click", () => {
      live = !live;
      showLive();
      if (live) {
        waiting = 0;
        loadPage().catch(report);
        loadTimeline().catch(report);
      }
      showCounts();
    });
  }

  function showLive() {
    const button = $("live");
    button.textContent = live ? "Live" : "Paused";
    button.className = "live " + (live ? "on" : "off");
    button.setAttribute("aria-pressed", String(!live));
  }

  // ---------------------------------------------------------------- the timeline

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  function typeClass(type) {
    return "t-" + (TYPES.includes(type) ? type : "other");
  }

  async function loadTimeline() {
    const params = filterParams();
    params.delete("from");
    params.delete("to");
    const data = await getJSON("/cmdai/timeline?" + params);
    const chart = $("timeline");
    clear(chart);
    const bars = data.bars;
    const highest = Math.max(1, ...bars.map((b) => Object.values(b.counts).reduce((a, n) => a + n, 0)));
    const width = 600 / Math.max(bars.length, 1);
    bars.forEach((bar, index) => {
      let y = 80;
      const group = svg("g", { "data-from": bar.from, "data-to": bar.to });
      let sum = 0;
      for (const type of data.types) {
        const count = bar.counts[type] || 0;
        if (!count) continue;
        sum += count;
        const height = (count / highest) * 76;
        y -= height;
        group.append(svg("rect", { x: index * width + 0.5, y: y, width: Math.max(width - 1, 0.5), height: height, class: typeClass(type) }));
      }
      const hit = svg("rect", { x: index * width, y: 0, width: width, height: 80, class: "hit" });
      const title = svg("title", {});
      title.textContent = `${bar.from} – ${bar.to}: ${sum} messages`;
      hit.append(title);
      group.append(hit);
      group.addEventListener("click", () => {
        state.from = bar.from;
        state.to = bar.to;
        changed();
      });
      chart.append(group);
    });
    const legend = $("legend");
    clear(legend);
    for (const type of data.types) {
      legend.append(el("span", {}, [el("span", { class: "swatch " + typeClass(type) }), type]));
    }
    if (data.bars.length) legend.append(el("span", { text: `one bar: ${data.step} s; click one to show its messages` }));
  }

  const refreshSide = throttle(() => {
    loadTimeline().catch(report);
    loadSummary().catch(report);
  }, 1500);

  // ---------------------------------------------------------------- one message

  function js(value) {
    return JSON.stringify(value === undefined ? null : value, null, 2);
  }

  // The call as the app made it, e.g. analytics.track("Nudge Shown", {...}).
  function pretty(m) {
    const args = (...values) => values.map(js).join(", ");
    switch (m.type) {
      case "track":
        return `analytics.track(${args(m.event, m.properties || {})})`;
      case "identify":
        return m.userId != null
          ? `analytics.identify(${args(m.userId, m.traits || {})})`
          : `analytics.identify(${args(m.traits || {})})`;
      case "page":
      case "screen": {
        const call = m.category != null ? args(m.category, m.name, m.properties || {}) : args(m.name, m.properties || {});
        return `analytics.${m.type}(${call})`;
      }
      case "group":
        return `analytics.group(${args(m.groupId, m.traits || {})})`;
      case "alias":
        return `analytics.alias(${args(m.userId, m.previousId)})`;
      default:
        return `// a message of type ${js(m.type)}\n${js(m)}`;
    }
  }

  function who(m) {
    const parts = [];
    if (m.userId != null) parts.push(`userId ${js(m.userId)}`);
    if (m.anonymousId != null) parts.push(`anonymousId ${js(m.anonymousId)}`);
    return parts.join(", ") || "no user";
  }

  function showBody() {
    if (!current) return;
    const raw = state.tab === "raw";
    $("tab-raw").classList.toggle("on", raw);
    $("tab-pretty").classList.toggle("on", !raw);
    $("detail-body").textContent = raw
      ? js(current.message)
      : `// ${who(current.message)} · ${current.message.timestamp || current.receivedAt}\n${pretty(current.message)}`;
  }

  function recordBlock(label, key, record, problem, describe) {
    const box = el("div", { "data-panel": key }, [el("h3", { text: label })]);
    if (problem) box.append(el("p", { text: "Not a record: " + problem }));
    else if (record.ignored != null) box.append(el("p", { text: "Nothing: " + record.ignored }));
    else box.append(el("pre", { class: "code", text: describe(record) }));
    box.append(
      el("details", {}, [
        el("summary", { text: "as map-payload writes it" }),
        el("pre", { class: "code", "data-record": key, text: JSON.stringify(record) }),
      ]),
    );
    return box;
  }

  function showCommandAI(commandAI) {
    const panel = $("commandai");
    clear(panel);
    const webhook = commandAI.webhook;
    panel.append(
      recordBlock("Webhook: user properties recorded", "webhook", webhook.record, webhook.problem, (record) =>
        `user ${js(record.userId)}\n${js(record.properties)}`,
      ),
    );
    for (const call of commandAI.destination) {
      const label = `Destination, deploy via Segment ${call.deploy ? "on" : "off"}`;
      panel.append(
        recordBlock(label, `destination-${call.deploy}`, call.record, call.problem, (record) =>
          `window.CommandBar.${record.call}(${record.args.map(js).join(", ")})`,
        ),
      );
    }
  }

  async function openMessage(seq) {
    state.seq = seq;
    writeURL();
    for (const row of $("rows").rows) row.classList.toggle("open", row.dataset.seq === seq);
    try {
      current = await getJSON("/cmdai/message?seq=" + encodeURIComponent(seq));
    } catch (error) {
      current = null;
      $("detail").hidden = false;
      $("detail-meta").textContent = "This message is not kept any more.";
      clear($("detail-flags"));
      $("detail-body").textContent = "";
      clear($("commandai"));
      return;
    }
    $("detail").hidden = false;
    $("detail").setAttribute("data-message-id", current.id);
    $("detail-meta").textContent = `${current.type} · ${current.path} · received ${current.receivedAt} · messageId ${current.id}`;
    const flags = $("detail-flags");
    clear(flags);
    for (const flag of current.flags) {
      flags.append(el("li", {}, [el("span", { class: flag.startsWith("plan: ") ? "badge plan" : "badge", text: flag })]));
    }
    showBody();
    showCommandAI(current.commandAI);
  }

  function wireDetail() {
    $("tab-pretty").addEventListener("click", () => {
      state.tab = "pretty";
      writeURL();
      showBody();
    });
    $("tab-raw").addEventListener("click", () => {
      state.tab = "raw";
      writeURL();
      showBody();
    });
    $("close").addEventListener("click", () => {
      state.seq = "";
      current = null;
      writeURL();
      $("detail").hidden = true;
    });
    $("copy").addEventListener("click", async () => {
      const text = $("detail-body").textContent;
      try {
        await navigator.clipboard.writeText(text);
        $("copy").textContent = "Copied";
      } catch (error) {
        // No clipboard (an insecure origin): select the text for Ctrl-C.
        const range = document.createRange();
        range.selectNodeContents($("detail-body"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        $("copy").textContent = "Selected";
      }
      setTimeout(() => ($("copy").textContent = "Copy"), 1200);
    });
  }

  // ---------------------------------------------------------------- the schema

  async function loadSchema() {
    const data = await getJSON("/cmdai/schema");
    const body = $("schema-rows");
    clear(body);
    const fragment = document.createDocumentFragment();
    for (const event of data.events) {
      const planned = event.planned == null ? "" : event.planned ? "planned" : "not planned";
      const broken = data.plan ? String(event.broken) : "";
      fragment.append(
        el("tr", { class: "event", "data-event": event.name, "data-type": event.type }, [
          el("td", { text: event.name || "(" + event.type + ")" }),
          el("td", { text: event.type }),
          el("td", { text: String(event.count) }),
          el("td", { text: "" }),
          el("td", { text: event.lastSeen }),
          el("td", { text: planned }),
          el("td", { text: broken }),
        ]),
      );
      for (const prop of event.properties) {
        fragment.append(
          el("tr", { class: "prop", "data-property": prop.name }, [
            el("td", { text: prop.name }),
            el("td", { text: "" }),
            el("td", { text: String(prop.count) }),
            el("td", { text: prop.types.join(", ") }),
            el("td", { text: prop.lastSeen }),
            el("td", { text: "" }),
            el("td", { text: "" }),
          ]),
        );
      }
    }
    body.append(fragment);
    $("schema-note").textContent =
      `${data.events.length} events among the ${data.kept} kept messages` +
      (data.plan ? "; checked against the tracking plan listen was given" : "; start listen with --plan to check them against a tracking plan");
  }

  function showView() {
    const schema = state.view === "schema";
    $("messages-view").hidden = schema;
    $("schema-view").hidden = !schema;
    $("view-messages").classList.toggle("on", !schema);
    $("view-schema").classList.toggle("on", schema);
    if (schema) loadSchema().catch(report);
  }

  function report(error) {
    $("counts").textContent = String(error.message || error);
  }

  // ---------------------------------------------------------------- start

  function start() {
    $("view-messages").addEventListener("click", () => {
      state.view = "messages";
      writeURL();
      showView();
    });
    $("view-schema").addEventListener("click", () => {
      state.view = "schema";
      writeURL();
      showView();
    });
    wireFilters();
    wireDetail();
    showLive();
    showFilters();
    showView();
    loadSummary().catch(report);
    loadPage()
      .then(() => {
        document.body.setAttribute("data-ready", "true");
      })
      .catch(report);
    loadTimeline().catch(report);
    if (state.seq) openMessage(state.seq);
    connect();
  }

  start();
})();
