// The bindings on the desktop JVM against a real relay: the generated Kotlin, JNA and
// libsafestream_ffi.so, exactly as an Android app uses them (minus Android).
//
// Run by scripts/kotlin-test.sh, which passes the relay binary and a scratch directory:
//   java -Djna.library.path=<dir> -cp ... AgentTestKt <relay-binary> <scratch-dir>
// Prints one line per check and "N passed, M failed"; exits 1 when any check failed.

import com.safestream.agent.AckResult
import com.safestream.agent.AckStatus
import com.safestream.agent.Agent
import com.safestream.agent.AgentConfig
import com.safestream.agent.Command
import com.safestream.agent.CommandOutcome
import com.safestream.agent.CommandRunner
import com.safestream.agent.CommandType
import com.safestream.agent.ConnectionState
import com.safestream.agent.LogLevel
import com.safestream.agent.Logger
import com.safestream.agent.RestrictedAttempt
import com.safestream.agent.SafeStreamException
import com.safestream.agent.SecureStore
import com.safestream.agent.StateObserver
import com.safestream.agent.bindingsVersion
import com.safestream.agent.setLogger
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.util.Base64
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.atomic.AtomicReference
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.concurrent.thread
import kotlinx.coroutines.runBlocking

const val JWT_SECRET = "kotlin-test-secret-0123456789abcdef0123456789"
const val SERVER_KEY = "kotlin-test-server-key-0123456789abcdef"
const val CHILD = "child-kt"
const val GUARDIAN = "parent-kt"

var passed = 0
var failed = 0

fun check(name: String, ok: Boolean, detail: String = "") {
    if (ok) {
        passed++
        println("ok   $name")
    } else {
        failed++
        println("FAIL $name ${detail}")
    }
}

/** Runs [block]; a thrown exception is a failed check, not a crash of the test. */
inline fun step(name: String, block: () -> Unit) {
    try {
        block()
    } catch (e: Throwable) {
        check(name, false, "threw $e")
    }
}

// ---- the relay and its REST API -------------------------------------------------------

class Relay(bin: String, dir: File) {
    val process: Process
    val base: String
    val logs = ConcurrentLinkedQueue<String>()

    init {
        val pb = ProcessBuilder(bin).redirectErrorStream(true).directory(dir)
        pb.environment().putAll(
            mapOf(
                "SAFESTREAM_LISTEN" to "127.0.0.1:0",
                "SAFESTREAM_DB" to File(dir, "relay.db").path,
                "SAFESTREAM_JWT_SECRET" to JWT_SECRET,
                "SAFESTREAM_SERVER_KEY" to SERVER_KEY,
                "RUST_LOG" to "info",
            )
        )
        process = pb.start()
        val addr = LinkedBlockingQueue<String>()
        thread(isDaemon = true, name = "relay-output") {
            try {
                process.inputStream.bufferedReader().forEachLine { line ->
                    logs.add(line)
                    val m = Regex("listening on (http://\\S+)").find(line)
                    if (m != null) addr.add(m.groupValues[1])
                }
            } catch (_: java.io.IOException) {
                // the relay was stopped
            }
        }
        base = addr.poll(30, TimeUnit.SECONDS) ?: error("the relay did not start: ${logs.joinToString("\n")}")
    }

    fun stop() {
        process.destroy()
        process.waitFor(5, TimeUnit.SECONDS)
    }
}

val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

fun call(method: String, url: String, credential: String, body: String? = null): Pair<Int, String> {
    val req = HttpRequest.newBuilder(URI.create(url))
        .timeout(Duration.ofSeconds(10))
        .header("Authorization", "Bearer $credential")
        .header("Content-Type", "application/json")
        .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
        .build()
    val res = http.send(req, HttpResponse.BodyHandlers.ofString())
    return res.statusCode() to res.body()
}

/** The string value of `"key": "..."` in a flat JSON text (enough for these answers). */
fun field(json: String, key: String): String? =
    Regex("\"$key\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").find(json)?.groupValues?.get(1)

fun b64url(bytes: ByteArray): String = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)

/** An HS256 parent JWT, as the main app's backend mints them. */
fun parentJwt(userId: String): String {
    val now = System.currentTimeMillis() / 1000
    val header = b64url("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
    val claims = b64url("""{"sub":"$userId","email":"$userId@example.com","iat":$now,"exp":${now + 3600}}""".toByteArray())
    val mac = Mac.getInstance("HmacSHA256")
    mac.init(SecretKeySpec(JWT_SECRET.toByteArray(), "HmacSHA256"))
    return "$header.$claims.${b64url(mac.doFinal("$header.$claims".toByteArray()))}"
}

// ---- the host: the platform traits implemented in Kotlin -----------------------------

/** Keeps the token in memory; the Android app uses the Keystore-backed store instead. */
class MemoryStore(initial: String?) : SecureStore {
    val token = AtomicReference(initial)
    override fun loadToken(): String? = token.get()
    override fun saveToken(token: String) { this.token.set(token) }
    override fun clearToken() { token.set(null) }
}

/** Queues the commands; the test "runs" them on other threads and completes them later. */
class QueueRunner : CommandRunner {
    val commands = LinkedBlockingQueue<Command>()
    override fun onCommand(command: Command) { commands.add(command) }
}

/** Records states and ack results; throws once, to prove a throwing callback is contained. */
class Observer : StateObserver {
    val states = LinkedBlockingQueue<ConnectionState>()
    val acks = LinkedBlockingQueue<Triple<String, AckStatus, AckResult>>()
    val threw = AtomicInteger(0)
    override fun onStateChanged(state: ConnectionState) {
        states.add(state)
        if (threw.getAndIncrement() == 0) throw IllegalStateException("observer bug (on purpose)")
    }
    override fun onAckFinished(commandId: String, status: AckStatus, result: AckResult) {
        acks.add(Triple(commandId, status, result))
    }
}

class CollectingLogger : Logger {
    val lines = ConcurrentLinkedQueue<String>()
    val calls = AtomicInteger(0)
    override fun onLog(level: LogLevel, target: String, message: String) {
        if (calls.getAndIncrement() == 0) throw RuntimeException("logger bug (on purpose)")
        lines.add("$level $target $message")
    }
}

fun waitFor(timeoutMs: Long, cond: () -> Boolean): Boolean {
    val end = System.currentTimeMillis() + timeoutMs
    while (System.currentTimeMillis() < end) {
        if (cond()) return true
        Thread.sleep(50)
    }
    return cond()
}

fun commandStatus(relay: Relay, id: String, jwt: String): Pair<String?, String?> {
    val (code, body) = call("GET", "${relay.base}/api/dashboard/remote-control/$id", jwt)
    return if (code == 200) field(body, "status") to field(body, "error") else "HTTP $code" to null
}

fun main(args: Array<String>) {
    val relayBin = args.getOrNull(0) ?: error("usage: AgentTestKt <relay-binary> <scratch-dir>")
    val scratch = File(args.getOrNull(1) ?: error("usage: AgentTestKt <relay-binary> <scratch-dir>"))
    scratch.mkdirs()
    val relay = Relay(relayBin, scratch)
    try {
        run(relay, scratch)
    } catch (e: Throwable) {
        check("test body", false, "threw $e")
        e.printStackTrace()
    } finally {
        relay.stop()
    }
    if (failed > 0) {
        println("--- relay output (last 40 lines)")
        relay.logs.toList().takeLast(40).forEach { println(it) }
    }
    println("$passed passed, $failed failed")
    kotlin.system.exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}

fun run(relay: Relay, scratch: File) {
    check("bindingsVersion", bindingsVersion().isNotEmpty())
    val logger = CollectingLogger()
    setLogger(logger, LogLevel.DEBUG)

    // The backend registers the child and a device; the device token goes to the store.
    val (c1, b1) = call("PUT", "${relay.base}/api/children/$CHILD", SERVER_KEY,
        """{"name":"Mia","guardians":["$GUARDIAN"]}""")
    check("backend creates the child", c1 in 200..299, "$c1 $b1")
    val (c2, b2) = call("POST", "${relay.base}/api/children/$CHILD/devices", SERVER_KEY, """{"name":"Mia's tablet"}""")
    val deviceId = field(b2, "deviceId")
    val token = field(b2, "token")
    check("backend creates the device", c2 in 200..299 && deviceId != null && token != null, "$c2 $b2")

    // Bad input is an exception, never a crash.
    step("a bad relay URL is SafeStreamException.Config") {
        try {
            Agent.start(AgentConfig(relayUrl = "http://nope", stateDir = File(scratch, "bad").path), QueueRunner(), MemoryStore(null), null)
            check("a bad relay URL is SafeStreamException.Config", false, "no exception")
        } catch (e: SafeStreamException.Config) {
            check("a bad relay URL is SafeStreamException.Config", e.reason.contains("scheme"), e.reason)
        }
    }

    val store = MemoryStore(token)
    val runner = QueueRunner()
    val observer = Observer()
    val config = AgentConfig(
        relayUrl = relay.base.replace("http://", "ws://"),
        stateDir = File(scratch, "agent").path,
        commandTimeoutSecs = 60uL,
    )
    val agent = Agent.start(config, runner, store, observer)
    check("the agent connects", waitFor(15_000) { agent.state() == ConnectionState.CONNECTED }, "state ${agent.state()}")
    // The observer is called right after the state changes: wait for it, do not race it.
    check("the observer heard CONNECTED (after throwing once)",
        waitFor(5_000) { observer.states.contains(ConnectionState.CONNECTED) } && observer.threw.get() > 1,
        "${observer.states}")

    // The parent sends PAUSE and LOCK_DEVICE to this device.
    val jwt = parentJwt(GUARDIAN)
    val ids = mutableMapOf<String, String>()
    for (type in listOf("PAUSE", "LOCK_DEVICE")) {
        val (code, body) = call("POST", "${relay.base}/api/dashboard/remote-control", jwt,
            """{"childId":"$CHILD","deviceId":"$deviceId","commandType":"$type","payload":{}}""")
        check("parent sends $type", code == 201, "$code $body")
        field(body, "id")?.let { ids[type] = it }
    }

    val got = mutableListOf<Command>()
    repeat(2) { runner.commands.poll(15, TimeUnit.SECONDS)?.let { got.add(it) } }
    val pause = got.find { it.commandType == CommandType.PAUSE }
    val lock = got.find { it.commandType == CommandType.LOCK_DEVICE }
    check("PAUSE reaches the runner", pause != null && pause.id == ids["PAUSE"] && pause.commandTypeName == "PAUSE", "$got")
    check("LOCK_DEVICE reaches the runner", lock != null && lock.id == ids["LOCK_DEVICE"] && lock.payloadJson == "{}", "$got")
    if (pause == null || lock == null) return

    // The host finishes them later, from other threads.
    val errors = ConcurrentLinkedQueue<Throwable>()
    val t1 = thread(name = "video-player") {
        try { agent.completeCommand(pause.id, CommandOutcome.Executed) } catch (e: Throwable) { errors.add(e) }
    }
    val t2 = thread(name = "device-policy") {
        try { agent.completeCommand(lock.id, CommandOutcome.Failed("device admin not granted")) } catch (e: Throwable) { errors.add(e) }
    }
    t1.join(); t2.join()
    check("completeCommand from other threads", errors.isEmpty(), "$errors")

    step("completing twice is SafeStreamException.UnknownCommand") {
        try {
            agent.completeCommand(pause.id, CommandOutcome.Executed)
            check("completing twice is SafeStreamException.UnknownCommand", false, "no exception")
        } catch (e: SafeStreamException.UnknownCommand) {
            check("completing twice is SafeStreamException.UnknownCommand", true)
        }
    }

    val acks = mutableListOf<Triple<String, AckStatus, AckResult>>()
    repeat(2) { observer.acks.poll(15, TimeUnit.SECONDS)?.let { acks.add(it) } }
    check("both acks confirmed by the relay",
        acks.count { it.third == AckResult.Confirmed } == 2 &&
            acks.any { it.first == pause.id && it.second == AckStatus.EXECUTED } &&
            acks.any { it.first == lock.id && it.second == AckStatus.FAILED }, "$acks")

    var pauseStatus: Pair<String?, String?> = null to null
    var lockStatus: Pair<String?, String?> = null to null
    waitFor(10_000) {
        pauseStatus = commandStatus(relay, pause.id, jwt)
        lockStatus = commandStatus(relay, lock.id, jwt)
        pauseStatus.first == "EXECUTED" && lockStatus.first == "FAILED"
    }
    check("the relay recorded PAUSE as EXECUTED", pauseStatus.first == "EXECUTED", "$pauseStatus")
    check("the relay recorded LOCK_DEVICE as FAILED with the host's reason",
        lockStatus.first == "FAILED" && lockStatus.second == "device admin not granted", "$lockStatus")

    // Async API from coroutines.
    runBlocking {
        step("syncNow") {
            val n = agent.syncNow()
            check("syncNow finds nothing left to run", n == 0u, "$n")
        }
        step("reportScreenTime + reportRestrictedAttempt") {
            agent.reportScreenTime(12u)
            agent.reportRestrictedAttempt(RestrictedAttempt(url = "https://example.com/x", title = "X", reason = "blocked"))
            check("waitForReports: both reports answered by the relay", agent.waitForReports(10_000uL))
            check("no report refused by the relay",
                logger.lines.none { it.contains("report refused") || it.contains("report failed") },
                "${logger.lines.filter { it.contains("report") }}")
        }
        step("screen time over 1440") {
            try {
                agent.reportScreenTime(1441u)
                check("screen time over 1440 is SafeStreamException.Config", false, "no exception")
            } catch (e: SafeStreamException.Config) {
                check("screen time over 1440 is SafeStreamException.Config", true)
            }
        }
        step("bad metadata") {
            try {
                agent.reportRestrictedAttempt(RestrictedAttempt(metadataJson = "[1,2]"))
                check("bad metadata is SafeStreamException.Config", false, "no exception")
            } catch (e: SafeStreamException.Config) {
                check("bad metadata is SafeStreamException.Config", true)
            }
        }
        step("pair with an empty name") {
            try {
                agent.pair("  ")
                check("pair with an empty name is SafeStreamException.Config", false, "no exception")
            } catch (e: SafeStreamException.Config) {
                check("pair with an empty name is SafeStreamException.Config", true)
            }
        }
        agent.reportStatus(true, """{"videoId":"v1","title":"Cartoons"}""")
        agent.setBackground(true)
        agent.networkAvailable()
        check("waitForAcks: nothing left", agent.waitForAcks(5_000uL))
    }

    check("the logger received the agent's lines (after throwing once)",
        waitFor(5_000) { logger.lines.any { it.contains("agent started") } }, "${logger.lines.take(5)}")
    check("no log line carries the token", logger.lines.none { it.contains(token!!) })

    runBlocking { agent.shutdown() }
    check("shutdown stops the agent", agent.state() == ConnectionState.STOPPED, "${agent.state()}")
    agent.close()
}
