package com.facebook.react;
import com.facebook.react.bridge.*;
import com.facebook.react.module.model.ReactModuleInfoProvider;
import com.facebook.react.uimanager.ViewManager;
import java.util.List;
public abstract class BaseReactPackage implements ReactPackage {
    public abstract NativeModule getModule(String name, ReactApplicationContext reactContext);
    public abstract ReactModuleInfoProvider getReactModuleInfoProvider();
    public List<NativeModule> createNativeModules(ReactApplicationContext reactContext) { return null; }
    public List<ViewManager> createViewManagers(ReactApplicationContext reactContext) { return null; }
}
