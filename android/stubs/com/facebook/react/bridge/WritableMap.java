package com.facebook.react.bridge;
public interface WritableMap extends ReadableMap {
    void putString(String key, String value);
    void putBoolean(String key, boolean value);
    void putInt(String key, int value);
}
