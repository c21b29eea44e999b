package com.bluelm.edge.demo;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Small file helpers: read all bytes, copy a stream, write a file atomically (temp + rename). */
final class Files {

    private Files() {
    }

    static byte[] read(File f) throws IOException {
        return readStream(new FileInputStream(f));
    }

    static byte[] readStream(InputStream in) throws IOException {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            copy(in, out);
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    static void copy(InputStream in, OutputStream out) throws IOException {
        byte[] buf = new byte[1 << 16];
        int n;
        while ((n = in.read(buf)) > 0) {
            out.write(buf, 0, n);
        }
    }

    /** Write to a temp file beside {@code target}, then rename it over the target. */
    static void writeAtomically(File target, byte[] data) throws IOException {
        File dir = target.getParentFile();
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        File tmp = new File(dir, "." + target.getName() + ".tmp");
        OutputStream out = new FileOutputStream(tmp);
        try {
            out.write(data);
        } finally {
            out.close();
        }
        if (!tmp.renameTo(target)) {
            tmp.delete();
            throw new IOException("cannot rename " + tmp + " to " + target);
        }
    }

    /** Copy a stream to {@code target} atomically. */
    static void copyAtomically(InputStream in, File target) throws IOException {
        writeAtomically(target, readStream(in));
    }

    /** Peak resident memory of this process in kB (VmHWM), or -1 if unknown. */
    static long peakMemoryKb() {
        try {
            String status = new String(read(new File("/proc/self/status")), "UTF-8");
            for (String line : status.split("\n")) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException e) {
            return -1;
        }
        return -1;
    }
}
