package com.facebook.react.bridge;
public abstract class ReactApplicationContext extends android.content.Context {
    public boolean hasActiveReactInstance() { return true; }
    public <T extends JavaScriptModule> T getJSModule(Class<T> c) { return null; }
}
