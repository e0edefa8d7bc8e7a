package com.facebook.react.module.model;
public class ReactModuleInfo {
    public ReactModuleInfo(String name, String className, boolean canOverrideExistingModule,
            boolean needsEagerInit, boolean isCxxModule, boolean isTurboModule) {}
    @Deprecated
    public ReactModuleInfo(String name, String className, boolean canOverrideExistingModule,
            boolean needsEagerInit, boolean hasConstants, boolean isCxxModule, boolean isTurboModule) {}
}
