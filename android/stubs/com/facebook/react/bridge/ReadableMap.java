package com.facebook.react.bridge;
public interface ReadableMap {
    boolean hasKey(String name);
    boolean isNull(String name);
    String getString(String name);
    double getDouble(String name);
}
