// The Node Socket.IO server that `../shared/seed/websocket-plan.md` proposed, reduced to what
// a command's round trip touches, as the baseline `relay-bench --phases roundtrip --socketio`
// measures the relay against (issue 21: "at most half of Socket.IO's CPU per command").
//
// What it keeps from the plan: `http.createServer` + `socket.io`'s `Server` at path
// `/api/socket`, a JWT checked in `io.use` from `handshake.auth.token`, `user:<id>` and
// `child:<id>` rooms, `POST /api/dashboard/remote-control` answering 201 `{ command }` and
// emitting `command:new` to the child's room and `command:sent` to the poster's,
// `PATCH /api/dashboard/remote-control/:id` emitting `command:status` to the guardians.
// What it leaves out, each of which would only add to its cost: Next.js (routes here are plain
// `http` handlers), a database (commands live in a `Map` and are lost on a crash), logging.
// What it fixes: the plan joins nobody to a `child:` room, so its `command:new` reached no
// device; here a device's socket joins its child's room. What it adds so relay-bench's setup
// and clients run unchanged: `PUT /api/children/:id` and
// `POST /api/children/:id/devices` with the backend key (device tokens are JWTs naming the
// child), a guardian check on POST and a child check on PATCH, and a `ready` event after the
// CONNECT (one frame per connection, none per command).
//
// Environment: SAFESTREAM_LISTEN (host:port), SAFESTREAM_JWT_SECRET, SAFESTREAM_SERVER_KEY.
// Prints "listening on <addr>" on stdout once it accepts connections.

import { createServer } from 'node:http';
import { createSecretKey, randomUUID } from 'node:crypto';
import { Server } from 'socket.io';
import jwt from 'jsonwebtoken';

const secret = process.env.SAFESTREAM_JWT_SECRET;
const serverKey = process.env.SAFESTREAM_SERVER_KEY;
const listen = process.env.SAFESTREAM_LISTEN ?? '127.0.0.1:3000';
if (!secret || !serverKey) {
  console.error('SAFESTREAM_JWT_SECRET and SAFESTREAM_SERVER_KEY are required');
  process.exit(2);
}
// A KeyObject made once: given the secret as a string, jsonwebtoken 9 first tries to parse it
// as a public key on every call, which costs more than the rest of a command (OpenSSL 3's
// decoder lookup: 1.43-1.52 ms per command at 500/s instead of ~0.5, found with perf).
const key = createSecretKey(Buffer.from(secret, 'utf8'));
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];

/** childId -> { guardians: string[] } */
const children = new Map();
/** commandId -> command */
const commands = new Map();
const COMMAND_TYPES = new Set(['PAUSE', 'RESUME', 'LOCK_DEVICE', 'UNLOCK_DEVICE', 'SET_VOLUME', 'SHOW_MESSAGE']);
const MAX_BODY = 64 * 1024;

function send(res, status, body) {
  if (res.headersSent) return; // an oversized body was answered 413 already
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function bearer(req) {
  const h = req.headers.authorization ?? '';
  return h.startsWith('Bearer ') ? h.slice(7) : null;
}

function verify(token) {
  try {
    return jwt.verify(token, key, { algorithms: ['HS256'] });
  } catch {
    return null;
  }
}

function readJson(req, res) {
  return new Promise((resolve) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      if (size > MAX_BODY) return;
      size += c.length;
      if (size > MAX_BODY) {
        res.setHeader('connection', 'close');
        send(res, 413, { error: 'body too large' });
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', () => resolve(undefined));
  });
}

async function route(req, res) {
  const url = req.url ?? '/';
  const parts = url.split('?')[0].split('/').filter(Boolean);
  // PUT /api/children/:id  (the app's backend)
  if (req.method === 'PUT' && parts.length === 3 && parts[0] === 'api' && parts[1] === 'children') {
    if (bearer(req) !== serverKey) return send(res, 401, { error: 'unauthorized' });
    const body = await readJson(req, res);
    if (!body || !Array.isArray(body.guardians)) return send(res, 400, { error: 'bad body' });
    children.set(parts[2], { guardians: body.guardians.map(String) });
    return send(res, 200, { child: { id: parts[2], guardians: body.guardians } });
  }
  // POST /api/children/:id/devices  (the app's backend)
  if (req.method === 'POST' && parts.length === 4 && parts[1] === 'children' && parts[3] === 'devices') {
    if (bearer(req) !== serverKey) return send(res, 401, { error: 'unauthorized' });
    if (!children.has(parts[2])) return send(res, 404, { error: 'no such child' });
    const id = randomUUID();
    const token = jwt.sign({ sub: id, childId: parts[2], device: true }, key, { algorithm: 'HS256' });
    return send(res, 201, { device: { id, childId: parts[2] }, token });
  }
  // POST /api/dashboard/remote-control  (a parent)
  if (req.method === 'POST' && url === '/api/dashboard/remote-control') {
    const user = verify(bearer(req) ?? '');
    if (!user || user.device) return send(res, 401, { error: 'unauthorized' });
    const body = await readJson(req, res);
    if (!body || typeof body.childId !== 'string' || !COMMAND_TYPES.has(body.commandType)) {
      return send(res, 400, { error: 'bad body' });
    }
    const child = children.get(body.childId);
    if (!child || !child.guardians.includes(user.sub)) return send(res, 404, { error: 'no such child' });
    const now = new Date();
    const command = {
      id: randomUUID(),
      childId: body.childId,
      commandType: body.commandType,
      payload: body.payload ?? {},
      status: 'PENDING',
      createdBy: user.sub,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 5 * 60 * 1000).toISOString(),
    };
    commands.set(command.id, command);
    io.to(`child:${body.childId}`).emit('command:new', command);
    io.to(`user:${user.sub}`).emit('command:sent', { commandId: command.id, status: 'sent' });
    return send(res, 201, { command });
  }
  // PATCH /api/dashboard/remote-control/:id  (the device's acknowledgment)
  if (req.method === 'PATCH' && parts.length === 4 && parts[2] === 'remote-control') {
    const device = verify(bearer(req) ?? '');
    if (!device || !device.device) return send(res, 401, { error: 'unauthorized' });
    const command = commands.get(parts[3]);
    if (!command || command.childId !== device.childId) return send(res, 404, { error: 'no such command' });
    const body = await readJson(req, res);
    if (!body || (body.status !== 'EXECUTED' && body.status !== 'FAILED')) {
      return send(res, 400, { error: 'bad body' });
    }
    if (command.status === 'PENDING') {
      command.status = body.status;
      command.executedAt = new Date().toISOString();
      const guardians = children.get(command.childId)?.guardians ?? [];
      io.to(guardians.map((g) => `user:${g}`)).emit('command:status', {
        commandId: command.id,
        status: command.status,
        executedAt: command.executedAt,
      });
    }
    return send(res, 200, { command });
  }
  return send(res, 404, { error: 'not found' });
}

const httpServer = createServer((req, res) => {
  route(req, res).catch(() => send(res, 500, { error: 'internal server error' }));
});

const io = new Server(httpServer, { path: '/api/socket' });

io.use((socket, next) => {
  const payload = verify(socket.handshake.auth?.token ?? '');
  if (!payload) return next(new Error('Invalid token'));
  socket.data.userId = payload.sub;
  socket.data.childId = payload.device ? payload.childId : null;
  next();
});

io.on('connection', (socket) => {
  if (socket.data.childId) {
    socket.join(`child:${socket.data.childId}`);
  } else {
    socket.join(`user:${socket.data.userId}`);
  }
  socket.emit('ready', {});
});

httpServer.listen(port, host, () => {
  console.log(`listening on ${listen}`);
});
