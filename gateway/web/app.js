// chatcluster web chat: one page, no build step, no libraries.
//
// It speaks the `chatcluster.json.v1` WebSocket subprotocol (docs/PROTOCOL.md,
// "WebSocket"): one JSON object per message, {"type": "<message name>", ...},
// in protobuf's JSON mapping (lowerCamelCase fields, 64-bit integers as
// strings, default values left out, so a false/0/"" field is simply absent).
//
// Shape of the code: all state lives in `state`; the server's messages go
// through `handlers`, one function per message type; the DOM is written with
// textContent only (user text never reaches innerHTML).
"use strict";

(() => {
  const SUBPROTOCOL = "chatcluster.json.v1";
  const PING_EVERY_MS = 20000;          // browsers expose no WebSocket ping, so C_PING keeps us honest
  const BACKOFF_FIRST_MS = 500;         // reconnect delays: 0.5 s doubling to 15 s, each with jitter
  const BACKOFF_MAX_MS = 15000;
  const BACK_ONLINE_SHOW_MS = 4000;     // how long "Back online" stays before plain "Connected"
  const HISTORY_ON_JOIN = 50;           // protocol 1.1: recent messages on join (older servers ignore it)
  const MAX_TEXT_BYTES = 4096;          // the server's limits, checked here too for a kinder message
  const MAX_NAME_BYTES = 32;
  const MAX_ROOM_NAME_BYTES = 64;
  const GROUP_WITHIN_US = 5 * 60 * 1e6; // consecutive messages of one sender within 5 min share a header

  // Why the server may close us for good: reconnecting by ourselves would fight it
  // (REPLACED: another tab logged in; two tabs reconnecting would replace each other forever).
  const FINAL_ERRORS = {
    REPLACED: "You logged in from another tab or device, so this page was disconnected.",
    BANNED: "This account is banned.",
  };

  // ------------------------------------------------------------------------------------------ state
  const state = {
    ws: null,                 // the current WebSocket, or null
    credentials: null,        // {name, password}: in memory only, to log in again after a drop
    loggedInOnce: false,      // the credentials proved good, so a drop means "reconnect"
    me: null,                 // {playerId, name}
    loggedIn: false,          // on the current connection
    connection: "offline",    // offline | connecting | online | reconnecting
    attempt: 0,               // reconnect attempts since the last good login
    reconnectTimer: 0,
    reconnectAt: 0,
    countdownTimer: 0,
    backOnlineTimer: 0,
    pingTimer: 0,
    pingSentAt: 0,
    lastHeardAt: 0,
    rttMs: null,
    finalReason: null,        // set when the server told us not to come back (see FINAL_ERRORS)
    kickedAt: 0,              // an S_ERROR KICKED followed by a close is a disconnect: no reconnect
    pending: null,            // the request that waits for its answer: "create" | "join" | "rejoin" | "leave"
    nextClientMsgId: 1,
    rooms: [],                // the last S_ROOM_LIST_RES
    room: null,               // {roomId, name, epoch, lastSeq}: the room we are in
    rejoin: null,             // the room to go back to once logged in again after a drop
    rejoinTries: 0,           // rejoins the server asked us to repeat (UNAVAILABLE: its room is being restored)
    rejoinTimer: 0,
    members: new Map(),       // playerId -> name, for the current room
    seenSeqs: new Set(),      // seqs shown in the current room (a replay after a resume may repeat some)
    lastGroup: null,          // {senderId, timeUs}: for grouping consecutive messages
  };
  const MAX_SHOWN = 1000;     // messages kept on the page; older ones are dropped from the DOM

  // ------------------------------------------------------------------------------------------ DOM
  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $("app"),
    status: $("conn-status"), statusText: $("conn-text"), retryNow: $("retry-now"),
    meBox: $("me-box"), meName: $("me-name"), meAvatar: $("me-avatar"), logout: $("logout"),
    banner: $("error-banner"), bannerText: $("error-text"), bannerClose: $("error-close"),
    loginView: $("login-view"), loginForm: $("login-form"), loginName: $("login-name"),
    loginPassword: $("login-password"), loginSubmit: $("login-submit"), loginError: $("login-error"),
    chatView: $("chat-view"), sidebar: $("sidebar"), sidebarToggle: $("sidebar-toggle"),
    roomList: $("room-list"), roomListEmpty: $("room-list-empty"), refreshRooms: $("refresh-rooms"),
    createForm: $("create-room-form"), createName: $("create-room-name"), createSubmit: $("create-room-submit"),
    joinForm: $("join-room-form"), joinId: $("join-room-id"), joinSubmit: $("join-room-submit"),
    memberList: $("member-list"), memberCount: $("member-count"),
    roomPanel: $("room"), roomTitle: $("room-title"), roomSub: $("room-sub"), leaveRoom: $("leave-room"),
    lobby: $("lobby"), messages: $("messages"), jumpLatest: $("jump-latest"),
    composer: $("composer"), composerInput: $("composer-input"), composerSend: $("composer-send"),
  };

  /** An element with attributes and children; strings become text nodes (never parsed as HTML). */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const utf8Bytes = (text) => new TextEncoder().encode(text).length;

  /** A stable colour per name, for avatars: FNV-1a of the name picks one of a few well-spread hues. */
  const HUES = [4, 28, 48, 142, 168, 192, 214, 250, 282, 318];
  function hueOf(name) {
    let hash = 0x811c9dc5;
    for (const ch of name) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
    return HUES[hash % HUES.length];
  }

  function avatar(name, extraClass) {
    const initial = (Array.from(name.trim())[0] || "?").toUpperCase();
    const node = h("span", { class: "avatar" + (extraClass ? " " + extraClass : ""), "aria-hidden": "true" }, initial);
    node.style.setProperty("--hue", hueOf(name));
    return node;
  }

  function timeOf(serverTimeUs) {
    const date = serverTimeUs ? new Date(Number(serverTimeUs) / 1000) : new Date();
    return {
      short: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      full: date.toLocaleString(),
      iso: date.toISOString(),
    };
  }

  // ------------------------------------------------------------------------------------------ errors
  /** Errors go on the page, in words, never only to the console. */
  function showError(text) {
    text = text.charAt(0).toUpperCase() + text.slice(1);
    if (!/[.!?…)]$/.test(text)) text += ".";
    ui.bannerText.textContent = text;
    ui.banner.hidden = false;
  }

  function clearError() {
    ui.banner.hidden = true;
    ui.bannerText.textContent = "";
  }

  function showLoginError(text) {
    ui.loginError.textContent = text;
    ui.loginError.hidden = !text;
  }

  // ------------------------------------------------------------------------------------------ connection
  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  function send(message) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(message));
    return true;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = 0;
    let ws;
    try {
      ws = new WebSocket(wsUrl(), SUBPROTOCOL);
    } catch (err) {
      connectionLost(null, `cannot open ${wsUrl()}: ${err.message}`);
      return;
    }
    state.ws = ws;
    state.loggedIn = false;
    setConnection(state.loggedInOnce ? "reconnecting" : "connecting");
    ws.onopen = () => {
      if (ws !== state.ws) return;
      state.lastHeardAt = Date.now();
      send({ type: "C_LOGIN_REQ", name: state.credentials.name, password: state.credentials.password });
      startPings();
    };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      state.lastHeardAt = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        showError(`The server sent something this page cannot read (${err.message}).`);
        return;
      }
      const handler = handlers[message.type];
      if (handler) handler(message);
      else console.warn("chatcluster: no handler for", message.type, message);
    };
    ws.onclose = (event) => {
      if (ws !== state.ws) return;
      connectionLost(ws, event.reason || (event.code === 1006 ? "" : `code ${event.code}`));
    };
    // onerror carries no detail in browsers; onclose always follows it.
  }

  /** Forget the current socket at once (without waiting for a closing handshake that may never come). */
  function dropSocket() {
    const ws = state.ws;
    state.ws = null;
    stopPings();
    clearTimeout(state.rejoinTimer);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try { ws.close(1000); } catch (_) { /* already closing */ }
    }
  }

  function connectionLost(ws, reason) {
    dropSocket();
    state.pending = null;
    updateControls();
    if (!state.credentials) return;                       // logged out on purpose
    if (!state.loggedInOnce) {                            // the first login never got through
      state.credentials = null;
      setConnection("offline");
      showLoginError(`Could not connect to the chat server at ${wsUrl()}` + (reason ? ` (${reason})` : "")
                     + ". Is it running? Try again in a moment.");
      setBusy(false);
      return;
    }
    const kicked = Date.now() - state.kickedAt < 5000;
    if (state.finalReason || kicked) {                    // the server asked us not to come back
      setConnection("offline", "Disconnected");
      showError(state.finalReason || "You were disconnected by an operator.");
      if (state.room) addNotice("info", "Disconnected.");
      ui.retryNow.hidden = false;
      return;
    }
    if (state.room && !state.rejoin) {  // the first loss, not a failed attempt to reconnect
      state.rejoin = { ...state.room };
      addNotice("info", "Connection lost. Reconnecting…");
    }
    scheduleReconnect();
  }

  /** Exponential back-off with jitter: attempt n waits 0.5 s * 2^n (at most 15 s), times 0.5..1. */
  function scheduleReconnect() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = Math.round(ceiling * (0.5 + Math.random() * 0.5));
    state.attempt += 1;
    state.reconnectAt = Date.now() + delay;
    state.reconnectTimer = setTimeout(connect, delay);
    setConnection("reconnecting");
    clearInterval(state.countdownTimer);
    state.countdownTimer = setInterval(renderStatus, 1000);
  }

  function reconnectNow() {
    state.finalReason = null;
    state.kickedAt = 0;
    if (!state.credentials || (state.ws && state.ws.readyState <= WebSocket.OPEN)) return;
    clearError();
    connect();
  }

  /**
   * C_PING every 20 s. A ping that nothing at all answered by the next tick means a dead link (a TCP
   * connection can stay "open" for many minutes after the network is gone); reconnect. Judged per ping,
   * not by wall-clock silence, so a background tab whose timers the browser slows down is not misjudged.
   */
  function startPings() {
    stopPings();
    state.pingSentAt = 0;
    state.pingTimer = setInterval(() => {
      if (state.pingSentAt && state.lastHeardAt < state.pingSentAt) {
        connectionLost(state.ws, "the server stopped answering");
        return;
      }
      if (send({ type: "C_PING", clientTimeUs: String(Date.now() * 1000) })) state.pingSentAt = Date.now();
    }, PING_EVERY_MS);
  }

  function stopPings() {
    clearInterval(state.pingTimer);
    state.pingTimer = 0;
  }

  function setConnection(kind, label) {
    state.connection = kind;
    state.statusLabel = label || null;
    if (kind !== "reconnecting") clearInterval(state.countdownTimer);
    renderStatus();
    updateControls();
  }

  function renderStatus() {
    const kind = state.connection;
    let text = state.statusLabel;
    if (!text) {
      if (kind === "online") text = state.rttMs === null ? "Connected" : `Connected · ${state.rttMs} ms`;
      else if (kind === "connecting") text = "Connecting…";
      else if (kind === "offline") text = "Not connected";
      else if (state.ws) text = `Reconnecting… (attempt ${state.attempt})`;
      else {
        const seconds = Math.max(0, Math.ceil((state.reconnectAt - Date.now()) / 1000));
        text = seconds > 0 ? `Connection lost. Reconnecting in ${seconds} s…` : "Connection lost. Reconnecting…";
      }
    }
    ui.status.dataset.state = kind;
    ui.statusText.textContent = text;
    ui.retryNow.hidden = !(kind === "reconnecting" && !state.ws) && !(kind === "offline" && state.loggedInOnce
                                                                       && state.credentials);
  }

  // ------------------------------------------------------------------------------------------ the server's messages
  const handlers = {
    S_LOGIN_RES(msg) {
      if (state.loggedIn) return;  // already logged in on this connection: nothing to do
      if (!msg.success) {
        const text = msg.message || "Login failed.";
        const wasIn = state.loggedInOnce;
        endSession();
        showLoginError(wasIn ? `Could not log in again after the connection dropped: ${text}` : text);
        ui.loginPassword.focus();
        return;
      }
      const wasReconnect = state.loggedInOnce;
      state.me = { playerId: msg.playerId, name: msg.name || state.credentials.name };
      state.loggedIn = true;
      state.loggedInOnce = true;
      state.attempt = 0;
      state.rejoinTries = 0;
      state.finalReason = null;
      showLoginError("");
      setBusy(false);
      ui.meName.textContent = state.me.name;
      const badge = avatar(state.me.name);
      badge.id = "me-avatar";
      ui.meAvatar.replaceWith(badge);
      ui.meAvatar = badge;
      showView("chat");
      if (wasReconnect) {
        setConnection("online", "Back online");
        clearTimeout(state.backOnlineTimer);
        state.backOnlineTimer = setTimeout(() => { if (state.connection === "online") setConnection("online"); },
                                           BACK_ONLINE_SHOW_MS);
        if (!state.rejoin) addNotice("info", "Back online.");
      } else {
        setConnection("online");
      }
      requestRooms();
      if (state.rejoin) sendRejoin(state.rejoin);
      else if (!wasReconnect) ui.createName.focus();
    },

    S_ROOM_LIST_RES(msg) {
      state.rooms = (msg.rooms || []).map(roomInfo);
      renderRooms();
    },

    S_CREATE_ROOM_RES(msg) {
      state.pending = null;
      if (!msg.success) {
        showError(`Could not create the room: ${msg.message || "refused by the server"}`);
        updateControls();
        return;
      }
      enterRoom(msg, "created");
      ui.createName.value = "";
    },

    S_JOIN_ROOM_RES(msg) {
      const wasRejoin = state.pending === "rejoin";
      const wanted = state.rejoin;
      state.pending = null;
      state.rejoin = null;
      state.rejoinTries = 0;
      clearTimeout(state.rejoinTimer);
      if (!msg.success) {
        const reason = msg.message || "refused by the server";
        if (wasRejoin && wanted) {
          leaveRoomState();
          showError(`Back online, but could not rejoin “${wanted.name}”: ${reason}`);
        } else {
          showError(`Could not join the room: ${reason}`);
        }
        requestRooms();
        updateControls();
        return;
      }
      enterRoom(msg, wasRejoin ? "rejoined" : "joined", wanted);
      ui.joinId.value = "";
    },

    S_JOIN_ROOM_NTF(msg) {
      if (!inCurrentRoom(msg.roomId) || !msg.player) return;
      state.members.set(msg.player.playerId, msg.player.name || "");
      renderMembers();
      addNotice("join", `${msg.player.name} joined`, msg.player.playerId);
    },

    S_LEAVE_ROOM_NTF(msg) {
      if (!inCurrentRoom(msg.roomId) || !msg.player) return;
      state.members.delete(msg.player.playerId);
      renderMembers();
      addNotice("leave", `${msg.player.name} left`, msg.player.playerId);
    },

    S_LEAVE_ROOM_ACK(msg) {
      state.pending = null;
      if (!msg.success) {
        showError(`Could not leave the room: ${msg.message || "refused by the server"}`);
        updateControls();
        return;
      }
      leaveRoomState();
      requestRooms();
    },

    S_ROOM_CHAT_NTF(msg) {
      if (!inCurrentRoom(msg.roomId)) return;
      const seq = Number(msg.seq || 0);
      if (seq && state.seenSeqs.has(seq)) return;  // a replay we already show
      const outOfOrder = seq > 0 && seq < state.room.lastSeq;
      if (seq) state.seenSeqs.add(seq);
      if (seq > state.room.lastSeq) state.room.lastSeq = seq;
      addMessage(msg, seq, outOfOrder);
    },

    S_ROOM_HISTORY_RES(msg) {
      if (!msg.success && msg.message) addNotice("info", msg.message);
    },

    S_ERROR(msg) {
      const code = msg.code || "UNKNOWN";
      const text = msg.message || code.toLowerCase().replace(/_/g, " ");
      if (FINAL_ERRORS[code]) {
        state.finalReason = FINAL_ERRORS[code] + (msg.message ? ` (${msg.message})` : "");
        showError(state.finalReason);
        return;
      }
      if (state.pending === "rejoin" && code === "BAD_REQUEST" && state.rejoin && state.rejoin.epoch !== "0") {
        state.rejoin.epoch = "0";  // the server would not resume from where we were: a plain join, then
        sendRejoin(state.rejoin);
        return;
      }
      if (state.pending === "rejoin" && code === "UNAVAILABLE" && state.rejoin && state.rejoinTries < 6) {
        // The room's shard is restarting or restoring it: ask again after a while, as the server says.
        state.pending = null;
        state.rejoinTries += 1;
        const delay = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (state.rejoinTries - 1)) * (0.5 + Math.random() * 0.5);
        if (state.rejoinTries === 1) addNotice("info", `Cannot rejoin yet (${text}). Trying again…`);
        state.rejoinTimer = setTimeout(() => { if (state.loggedIn && state.rejoin) sendRejoin(state.rejoin); }, delay);
        updateControls();
        return;
      }
      if (state.pending && code !== "KICKED") {  // a create/join/leave that was refused outright
        const what = state.pending === "rejoin" ? "rejoin the room" : `${state.pending} the room`;
        if (state.pending === "rejoin") {
          leaveRoomState();
          state.rejoin = null;
        }
        state.pending = null;
        showError(`Could not ${what}: ${text}`);
        updateControls();
        return;
      }
      if (code === "KICKED") {
        state.kickedAt = Date.now();
        if (state.room) {
          addNotice("error", `You were removed from the room: ${text}`);
          leaveRoomState();
          requestRooms();
        }
        showError(`You were removed: ${text}`);
        return;
      }
      if (code === "NOT_IN_ROOM" && state.room) {
        addNotice("error", text);
        leaveRoomState();
        requestRooms();
      } else if (state.room && code === "UNAVAILABLE") {
        addNotice("error", text);
      }
      if (code === "SHUTTING_DOWN") {
        showError("The server is shutting down; this page reconnects when it is back.");
        return;
      }
      showError(text);
    },

    S_PONG(msg) {
      if (msg.clientTimeUs) {
        state.rttMs = Math.max(0, Math.round(Date.now() - Number(msg.clientTimeUs) / 1000));
        if (state.connection === "online" && !state.statusLabel) renderStatus();
      }
    },
  };

  const roomInfo = (r) => ({ roomId: r.roomId || "0", name: r.name || "", memberCount: r.memberCount || 0 });
  const inCurrentRoom = (roomId) => state.room && state.room.roomId === (roomId || "0");

  // ------------------------------------------------------------------------------------------ requests
  function requestRooms() {
    send({ type: "C_ROOM_LIST_REQ" });
  }

  function request(kind, message) {
    if (state.pending) return;
    if (!send(message)) {
      showError("Not connected: wait until the page is back online.");
      return;
    }
    state.pending = kind;
    updateControls();
  }

  function joinRoom(roomId) {
    clearError();
    request("join", { type: "C_JOIN_ROOM_REQ", roomId: String(roomId), history: HISTORY_ON_JOIN });
  }

  /** After a reconnect: back into the room we were in (resuming from our last seq where the server can). */
  function sendRejoin(room) {
    const message = { type: "C_JOIN_ROOM_REQ", roomId: room.roomId, history: HISTORY_ON_JOIN };
    if (room.epoch && room.epoch !== "0") Object.assign(message, { resume: true, sinceSeq: String(room.lastSeq), epoch: room.epoch });
    if (send(message)) state.pending = "rejoin";
    updateControls();
  }

  function sendChat() {
    const text = ui.composerInput.value;
    if (!text.trim() || !state.room) return;
    const size = utf8Bytes(text);
    if (size > MAX_TEXT_BYTES) {
      showError(`That message is ${size} bytes; the limit is ${MAX_TEXT_BYTES}.`);
      return;
    }
    const clientMsgId = String(state.nextClientMsgId++);
    if (!send({ type: "C_ROOM_CHAT_REQ", text, clientMsgId })) {
      showError("Not connected: your message was not sent. It is still in the box; send it once back online.");
      return;
    }
    ui.composerInput.value = "";
    autoGrow();
  }

  // ------------------------------------------------------------------------------------------ room state
  function enterRoom(msg, how, previous) {
    const info = roomInfo(msg.room || {});
    const sameRoom = previous && previous.roomId === info.roomId;
    const epoch = msg.epoch || "0";
    // Back in the same room: what is on screen stays (seq goes on across epochs; a replay is deduplicated).
    const keepMessages = how === "rejoined" && sameRoom;
    state.room = { roomId: info.roomId, name: info.name, epoch, lastSeq: keepMessages ? previous.lastSeq : 0 };
    state.members = new Map((msg.members || []).map((p) => [p.playerId, p.name || ""]));
    if (!keepMessages) {
      ui.messages.replaceChildren();
      state.seenSeqs = new Set();
      state.lastGroup = null;
    }
    renderRoom();
    renderMembers();
    if (how === "created") addNotice("info", `You created “${info.name}”. Invite others with room id ${info.roomId}.`);
    else if (how === "joined") addNotice("info", `You joined “${info.name}”.`);
    else {
      addNotice("info", "Reconnected: back in the room.");
      if (epoch === "0") addNotice("info", "Messages sent while you were offline are not shown.");
      else if (!msg.recovered) addNotice("info", "Some messages sent while you were offline may be missing.");
    }
    renderRooms();
    requestRooms();  // member counts changed, and a new room is not in the list yet
    scrollToLatest();
    setSidebar(false);
    ui.composerInput.focus();
  }

  function leaveRoomState() {
    state.room = null;
    state.members = new Map();
    state.seenSeqs = new Set();
    state.lastGroup = null;
    ui.messages.replaceChildren();
    renderRoom();
    renderMembers();
    renderRooms();
  }

  // ------------------------------------------------------------------------------------------ rendering
  function showView(view) {
    ui.app.dataset.view = view;
    ui.loginView.hidden = view !== "login";
    ui.chatView.hidden = view !== "chat";
    ui.meBox.hidden = view !== "chat";
  }

  function setBusy(busy) {
    ui.loginSubmit.disabled = busy;
    ui.loginSubmit.textContent = busy ? "Connecting…" : "Log in";
  }

  function updateControls() {
    const online = state.connection === "online" && !!state.ws;
    const idle = online && !state.pending;
    ui.createSubmit.disabled = !idle;
    ui.joinSubmit.disabled = !idle;
    ui.refreshRooms.disabled = !online;
    ui.leaveRoom.disabled = !idle || !state.room;
    ui.composerSend.disabled = !online || !state.room;
    for (const button of ui.roomList.querySelectorAll("button")) button.disabled = !idle;
    ui.roomPanel.classList.toggle("offline", !!state.room && !online);
  }

  function renderRooms() {
    const current = state.room ? state.room.roomId : null;
    const items = state.rooms.map((room) => {
      const here = room.roomId === current;
      const count = `${room.memberCount} ${room.memberCount === 1 ? "member" : "members"}`;
      return h("li", { "data-testid": "room-item", "data-room-id": room.roomId, class: here ? "current" : "" },
        h("button", {
          type: "button", class: "room-button", "data-testid": "room-join",
          title: here ? "You are in this room" : `Join “${room.name}”`,
          "aria-current": here ? "true" : null,
          onclick: () => { if (!here) joinRoom(room.roomId); },
        },
        h("span", { class: "room-hash", "aria-hidden": "true" }, "#"),
        h("span", { class: "room-name" }, room.name),
        h("span", { class: "room-meta" }, here ? "here" : count)));
    });
    ui.roomList.replaceChildren(...items);
    ui.roomListEmpty.hidden = items.length > 0;
    updateControls();
  }

  function renderMembers() {
    const members = [...state.members.entries()].sort((a, b) => a[1].localeCompare(b[1]));
    ui.memberCount.textContent = state.room ? String(members.length) : "";
    ui.memberList.replaceChildren(...members.map(([playerId, name]) => {
      const mine = state.me && playerId === state.me.playerId;
      return h("li", { "data-testid": "member", "data-player-id": playerId, class: mine ? "me" : "" },
        avatar(name), h("span", { class: "member-name" }, name), mine ? h("span", { class: "you" }, "you") : null);
    }));
  }

  function renderRoom() {
    const room = state.room;
    ui.roomPanel.dataset.roomId = room ? room.roomId : "";
    ui.roomTitle.textContent = room ? room.name : "No room";
    ui.roomSub.textContent = room ? `room ${room.roomId}` : "";
    ui.lobby.hidden = !!room;
    ui.messages.hidden = !room;
    ui.composer.hidden = !room;
    ui.leaveRoom.hidden = !room;
    ui.composerInput.placeholder = room ? `Message ${room.name}` : "";
    document.title = room ? `${room.name} · chatcluster` : "chatcluster";
    updateControls();
  }

  function nearBottom() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToLatest() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
    ui.jumpLatest.hidden = true;
  }

  function append(node, forceScroll) {
    const stick = forceScroll || nearBottom();
    ui.messages.append(node);
    if (stick) scrollToLatest();
    else ui.jumpLatest.hidden = false;
  }

  function addNotice(kind, text, playerId) {
    if (!state.room) return;
    state.lastGroup = null;
    const now = timeOf(0);
    append(h("li", { class: `notice notice-${kind}`, "data-testid": "notice", "data-kind": kind,
                     "data-player-id": playerId },
      h("span", { class: "notice-text" }, text),
      h("time", { class: "notice-time", datetime: now.iso, title: now.full }, now.short)));
  }

  function addMessage(msg, seq, outOfOrder) {
    const sender = msg.sender || {};
    const senderId = sender.playerId || "0";
    const name = sender.name || (senderId === "0" ? "system" : `player ${senderId}`);
    const mine = !!state.me && senderId === state.me.playerId;
    const system = senderId === "0";
    const when = timeOf(msg.serverTimeUs);
    const timeUs = Number(msg.serverTimeUs || 0);
    const last = state.lastGroup;
    const continued = !!last && last.senderId === senderId && timeUs - last.timeUs < GROUP_WITHIN_US;
    state.lastGroup = { senderId, timeUs };
    const classes = ["msg", mine ? "mine" : "theirs", system ? "system" : "", continued ? "continued" : ""];
    const node = h("li", {
      class: classes.filter(Boolean).join(" "), "data-testid": "message", "data-seq": seq || null,
      "data-sender-id": senderId, "data-sender-name": name, "data-client-msg-id": mine ? msg.clientMsgId : null,
    },
    continued ? h("span", { class: "avatar-gap", "aria-hidden": "true" }) : avatar(name),
    h("div", { class: "msg-body" },
      h("div", { class: "msg-head" },
        h("span", { class: "msg-sender" }, mine ? `${name} (you)` : name),
        h("time", { class: "msg-time", datetime: when.iso, title: when.full }, when.short)),
      h("div", { class: "msg-text" }, msg.text || "")));
    // Live messages arrive in seq order; one that does not (a replay) goes where its seq belongs.
    const later = outOfOrder
      ? [...ui.messages.querySelectorAll("[data-seq]")].find((el) => Number(el.dataset.seq) > seq) : null;
    if (later) ui.messages.insertBefore(node, later);
    else append(node, mine);
    while (ui.messages.childElementCount > MAX_SHOWN) ui.messages.firstElementChild.remove();
  }

  /** Narrow screens show the rooms and members as a drawer over the chat. */
  function setSidebar(open) {
    ui.app.classList.toggle("sidebar-open", open);
    ui.sidebarToggle.setAttribute("aria-expanded", String(open));
  }

  function autoGrow() {
    const input = ui.composerInput;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
    input.style.overflowY = input.scrollHeight + 2 > 160 ? "auto" : "hidden";
  }

  // ------------------------------------------------------------------------------------------ user actions
  ui.loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.loginName.value.trim();
    const password = ui.loginPassword.value;
    if (!name) return showLoginError("Enter a name.");
    if (utf8Bytes(name) > MAX_NAME_BYTES) return showLoginError(`Names are at most ${MAX_NAME_BYTES} bytes.`);
    if (!password) return showLoginError("Enter a password (a new name registers with it).");
    showLoginError("");
    clearError();
    state.credentials = { name, password };
    state.loggedInOnce = false;
    state.finalReason = null;
    state.attempt = 0;
    state.me = null;
    setBusy(true);
    connect();
  });

  /** Back to the login form with nothing of the session left: no socket, no credentials, no room. */
  function endSession() {
    state.credentials = null;  // first, so the close below is not taken for a drop
    state.loggedInOnce = false;
    state.loggedIn = false;
    state.rejoin = null;
    state.rejoinTries = 0;
    state.pending = null;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    dropSocket();
    state.me = null;
    state.rooms = [];
    leaveRoomState();
    clearError();
    setConnection("offline");
    setBusy(false);
    showView("login");
    ui.loginPassword.value = "";
  }

  ui.logout.addEventListener("click", () => {
    endSession();
    ui.loginName.focus();
  });

  ui.retryNow.addEventListener("click", reconnectNow);
  ui.bannerClose.addEventListener("click", clearError);
  ui.refreshRooms.addEventListener("click", requestRooms);
  ui.leaveRoom.addEventListener("click", () => request("leave", { type: "C_LEAVE_ROOM_REQ" }));
  ui.sidebarToggle.addEventListener("click", () => setSidebar(!ui.app.classList.contains("sidebar-open")));
  ui.roomPanel.addEventListener("click", () => setSidebar(false));  // narrow screens: a tap outside closes it
  ui.jumpLatest.addEventListener("click", scrollToLatest);
  ui.messages.addEventListener("scroll", () => { if (nearBottom()) ui.jumpLatest.hidden = true; });

  ui.createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.createName.value.trim();
    if (!name) return showError("Give the new room a name.");
    if (utf8Bytes(name) > MAX_ROOM_NAME_BYTES) return showError(`Room names are at most ${MAX_ROOM_NAME_BYTES} bytes.`);
    clearError();
    request("create", { type: "C_CREATE_ROOM_REQ", name });
  });

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = ui.joinId.value.trim();
    if (!/^[1-9][0-9]{0,18}$/.test(id)) return showError("A room id is a positive whole number, e.g. 12.");
    joinRoom(id);
  });

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendChat();
  });

  ui.composerInput.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; never while an input method is composing a character.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendChat();
    }
  });
  ui.composerInput.addEventListener("input", autoGrow);

  // The network is back (laptop woke up, Wi-Fi returned): no need to wait out the back-off.
  window.addEventListener("online", () => { if (state.reconnectTimer) reconnectNow(); });

  showView("login");
  renderRoom();
  renderStatus();
  ui.loginName.focus();
})();
