// ShopStream SPA: plain JavaScript, no build step. Every call goes to /api on this origin (Traefik
// routes it to the gateway). The JWT lives in sessionStorage; the WebSocket carries it as the
// subprotocol pair "bearer, <token>" because browsers cannot set headers on a WebSocket.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let retry = 1000;

function token() { return sessionStorage.getItem("token"); }

function status(text, ok) {
  $("status").textContent = text || "";
  $("status").className = ok ? "ok" : "";
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch("/api" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401 && path !== "/auth/login") { logout("Session expired, please log in again."); }
  if (!resp.ok) throw new Error((data && data.error) || resp.status + " " + resp.statusText);
  return data;
}

function money(cents) { return (cents / 100).toFixed(2); }

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

async function loadProducts() {
  const data = await api("GET", "/products");
  const body = $("products");
  body.replaceChildren();
  for (const p of data.products) {
    const row = document.createElement("tr");
    row.append(cell(p.id), cell(p.name), cell(money(p.price_cents)), cell(p.stock));
    const td = document.createElement("td");
    const qty = document.createElement("input");
    qty.type = "number"; qty.min = "1"; qty.value = "1";
    const buy = document.createElement("button");
    buy.textContent = "Order";
    buy.addEventListener("click", () => placeOrder(p.id, parseInt(qty.value, 10)));
    td.append(qty, buy);
    row.append(td);
    body.append(row);
  }
}

async function placeOrder(productId, quantity) {
  try {
    const order = await api("POST", "/orders", { items: [{ product_id: productId, quantity }] });
    status("Order #" + order.id + " placed (" + money(order.total_cents) + ")", true);
  } catch (e) { status("Order failed: " + e.message); }
}

function connect() {
  if (!token() || socket) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/api/notifications/ws", ["bearer", token()]);
  socket.onopen = () => { $("ws-state").textContent = "connected"; retry = 1000; };
  socket.onmessage = (msg) => {
    let text = msg.data;
    try {
      const ev = JSON.parse(msg.data);
      text = ev.occurred_at + "  order #" + ev.order.id + " " + ev.order.status + ", total " + money(ev.order.total_cents);
    } catch (e) { /* show it raw */ }
    const li = document.createElement("li");
    li.textContent = text;
    $("notifications").prepend(li);
  };
  socket.onclose = () => {
    socket = null;
    $("ws-state").textContent = "disconnected";
    if (token()) { setTimeout(connect, retry); retry = Math.min(retry * 2, 30000); }
  };
}

function show() {
  const logged = !!token();
  $("login-view").hidden = logged;
  $("shop-view").hidden = !logged;
  $("logout").hidden = !logged;
  $("whoami").textContent = logged ? sessionStorage.getItem("user") : "";
  if (logged) { loadProducts().catch((e) => status(e.message)); connect(); }
}

function logout(message) {
  sessionStorage.clear();
  if (socket) socket.close();
  status(message || "");
  show();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const data = await api("POST", "/auth/login", { username: form.get("username"), password: form.get("password") });
    sessionStorage.setItem("token", data.token);
    sessionStorage.setItem("user", form.get("username"));
    ev.target.reset();
    status("Logged in", true);
    show();
  } catch (e) { status("Login failed: " + e.message); }
});

$("product-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    await api("POST", "/products", {
      name: form.get("name"),
      price_cents: Math.round(parseFloat(form.get("price")) * 100),
      stock: parseInt(form.get("stock"), 10),
    });
    ev.target.reset();
    status("Product created", true);
    await loadProducts();
  } catch (e) { status("Create failed: " + e.message); }
});

$("refresh").addEventListener("click", () => loadProducts().catch((e) => status(e.message)));
$("logout").addEventListener("click", () => logout());
show();
