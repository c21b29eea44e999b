package com.bluelm.edge.demo;

import android.app.Application;
import android.system.ErrnoException;
import android.system.Os;

/**
 * Process start. The qnn flavour's QNN HTP libraries load their DSP skeletons from
 * ADSP_LIBRARY_PATH, so it is set to this app's native library folder before any model loads.
 */
public final class DemoApplication extends Application {

    @Override
    public void onCreate() {
        super.onCreate();
        if ("qnn".equals(BuildConfig.FLAVOR)) {
            try {
                Os.setenv("ADSP_LIBRARY_PATH", getApplicationInfo().nativeLibraryDir, true);
            } catch (ErrnoException e) {
                throw new IllegalStateException("cannot set ADSP_LIBRARY_PATH: " + e.getMessage(), e);
            }
        }
    }
}
