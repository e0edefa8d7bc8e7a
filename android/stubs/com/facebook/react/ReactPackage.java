package com.facebook.react;
import com.facebook.react.bridge.*;
import com.facebook.react.uimanager.ViewManager;
import java.util.List;
public interface ReactPackage {
    List<NativeModule> createNativeModules(ReactApplicationContext reactContext);
    List<ViewManager> createViewManagers(ReactApplicationContext reactContext);
}
