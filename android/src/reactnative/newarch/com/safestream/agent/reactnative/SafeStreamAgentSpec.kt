package com.safestream.agent.reactnative

import com.facebook.react.bridge.ReactApplicationContext

/**
 * The New Architecture's base of [SafeStreamAgentModule]: the codegen spec generated from
 * `src/NativeSafeStreamAgent.ts` (a TurboModule). Compiled when `newArchEnabled` is true;
 * `../oldarch` has the same methods for the old bridge.
 */
abstract class SafeStreamAgentSpec(ctx: ReactApplicationContext) : NativeSafeStreamAgentSpec(ctx) {
    companion object {
        /** The module's name in JavaScript. */
        const val NAME = NativeSafeStreamAgentSpec.NAME
    }
}
