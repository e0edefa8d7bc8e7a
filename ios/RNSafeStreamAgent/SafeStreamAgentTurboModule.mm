// New Architecture only: makes the Swift module `SafeStreamAgent` a TurboModule. The codegen
// of the app build (package.json `codegenConfig`) generates the protocol
// `NativeSafeStreamAgentSpec` and its JSI glue from src/NativeSafeStreamAgent.ts; the Swift
// class already has every selector of that protocol (scripts/rn-codegen-check.js checks the
// names), so this file only declares the conformance and hands out the JSI object.
// Not compiled on the project's CI (no Xcode there).
#ifdef RCT_NEW_ARCH_ENABLED
#import <React/RCTEventEmitter.h>
#import <RNSafeStreamAgentSpec/RNSafeStreamAgentSpec.h>

// Implemented in Swift (`@objc(SafeStreamAgent) class SafeStreamAgentModule`).
@interface SafeStreamAgent : RCTEventEmitter
@end

@interface SafeStreamAgent (TurboModule) <NativeSafeStreamAgentSpec>
@end

@implementation SafeStreamAgent (TurboModule)
- (std::shared_ptr<facebook::react::TurboModule>)getTurboModule:
    (const facebook::react::ObjCTurboModule::InitParams &)params
{
  return std::make_shared<facebook::react::NativeSafeStreamAgentSpecJSI>(params);
}
@end
#endif
