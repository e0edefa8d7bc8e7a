package com.safestream.agent.android

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.util.Base64
import com.safestream.agent.SafeStreamException
import com.safestream.agent.SecureStore
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The device token, encrypted with an AES-256-GCM key that lives in the Android Keystore
 * (hardware-backed where the device has it; the key never leaves it). Only the ciphertext
 * and its IV are stored, in the app's private SharedPreferences [prefsName].
 *
 * The key is created on first use under [keyAlias]. If the Keystore loses the key (e.g. a
 * backup restored on another device), the token cannot be decrypted: [loadToken] returns
 * null and the app pairs again. Exclude [prefsName] from Auto Backup.
 */
class KeystoreSecureStore(
    context: Context,
    private val keyAlias: String = "safestream-device-token",
    prefsName: String = "safestream-secure-store",
) : SecureStore {
    private val prefs = context.applicationContext.getSharedPreferences(prefsName, Context.MODE_PRIVATE)
    private val lock = Any()

    private fun key(): SecretKey {
        val ks = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (ks.getEntry(keyAlias, null) as? KeyStore.SecretKeyEntry)?.let { return it.secretKey }
        val gen = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
        gen.init(
            KeyGenParameterSpec.Builder(keyAlias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .build()
        )
        return gen.generateKey()
    }

    override fun loadToken(): String? {
        synchronized(lock) {
            val data = prefs.getString("token", null) ?: return null
            val iv = prefs.getString("iv", null) ?: return null
            return try {
                val cipher = Cipher.getInstance("AES/GCM/NoPadding")
                cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(128, Base64.decode(iv, Base64.NO_WRAP)))
                String(cipher.doFinal(Base64.decode(data, Base64.NO_WRAP)), Charsets.UTF_8)
            } catch (e: Exception) {
                // The key is gone or the data was tampered with: behave as "not paired".
                null
            }
        }
    }

    override fun saveToken(token: String) {
        synchronized(lock) {
            try {
                val cipher = Cipher.getInstance("AES/GCM/NoPadding")
                cipher.init(Cipher.ENCRYPT_MODE, key())
                val data = cipher.doFinal(token.toByteArray(Charsets.UTF_8))
                val ok = prefs.edit()
                    .putString("token", Base64.encodeToString(data, Base64.NO_WRAP))
                    .putString("iv", Base64.encodeToString(cipher.iv, Base64.NO_WRAP))
                    .commit()
                if (!ok) throw SafeStreamException.Storage("could not write the token")
            } catch (e: SafeStreamException) {
                throw e
            } catch (e: Exception) {
                throw SafeStreamException.Storage("keystore: ${e.javaClass.simpleName}")
            }
        }
    }

    override fun clearToken() {
        synchronized(lock) {
            prefs.edit().remove("token").remove("iv").commit()
        }
    }
}
