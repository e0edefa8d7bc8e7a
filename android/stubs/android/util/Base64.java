package android.util;
public final class Base64 {
    public static final int NO_WRAP = 2;
    public static byte[] decode(String s, int flags) { return new byte[0]; }
    public static String encodeToString(byte[] b, int flags) { return ""; }
}
